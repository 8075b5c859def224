// Package sample picks the next token from logits: greedy, or temperature
// sampling narrowed by top-k, top-p and min-p, with a repetition penalty,
// from a seeded generator so a fixed seed reproduces a completion.
package sample

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Params are the OpenAI/llama.cpp-style sampling parameters.
type Params struct {
	Temperature float64 // 0 means greedy
	TopK        int     // 0 means off
	TopP        float64 // 1 (or 0) means off
	MinP        float64 // 0 means off
	// RepeatPenalty > 1 divides positive (multiplies negative) logits of
	// tokens among the last RepeatLastN tokens, as llama.cpp does.
	RepeatPenalty    float64
	RepeatLastN      int
	PresencePenalty  float64
	FrequencyPenalty float64
	Seed             uint64
}

// Sampler holds the random state of one completion.
type Sampler struct {
	p   Params
	rng *rand.Rand
	buf []cand
}

type cand struct {
	id int32
	l  float64
}

// New returns a sampler for p.
func New(p Params) *Sampler {
	return &Sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0xda942042e4dd58b5))}
}

// Next picks a token. logits is modified (penalties applied); history is
// the sequence so far (prompt and completion).
func (s *Sampler) Next(logits []float32, history []int32) int32 {
	s.penalize(logits, history)
	if s.p.Temperature <= 0 {
		best := 0
		for i, l := range logits {
			if l > logits[best] {
				best = i
			}
		}
		return int32(best)
	}
	c := s.buf[:0]
	for i, l := range logits {
		c = append(c, cand{int32(i), float64(l)})
	}
	sort.Slice(c, func(a, b int) bool { return c[a].l > c[b].l || (c[a].l == c[b].l && c[a].id < c[b].id) })
	if k := s.p.TopK; k > 0 && k < len(c) {
		c = c[:k]
	}
	// softmax at temperature over the survivors
	mx := c[0].l
	var sum float64
	probs := make([]float64, len(c))
	for i := range c {
		probs[i] = math.Exp((c[i].l - mx) / s.p.Temperature)
		sum += probs[i]
	}
	for i := range probs {
		probs[i] /= sum
	}
	n := len(c)
	if mp := s.p.MinP; mp > 0 {
		for i := 1; i < n; i++ {
			if probs[i] < mp*probs[0] {
				n = i
				break
			}
		}
	}
	if tp := s.p.TopP; tp > 0 && tp < 1 {
		var cum float64
		for i := 0; i < n; i++ {
			cum += probs[i]
			if cum >= tp {
				n = i + 1
				break
			}
		}
	}
	var total float64
	for i := 0; i < n; i++ {
		total += probs[i]
	}
	r := s.rng.Float64() * total
	s.buf = c
	for i := 0; i < n; i++ {
		r -= probs[i]
		if r <= 0 {
			return c[i].id
		}
	}
	return c[n-1].id
}

func (s *Sampler) penalize(logits []float32, history []int32) {
	p := s.p
	if (p.RepeatPenalty == 0 || p.RepeatPenalty == 1) && p.PresencePenalty == 0 && p.FrequencyPenalty == 0 {
		return
	}
	last := history
	if p.RepeatLastN > 0 && len(last) > p.RepeatLastN {
		last = last[len(last)-p.RepeatLastN:]
	}
	counts := map[int32]int{}
	for _, t := range last {
		if t >= 0 && int(t) < len(logits) {
			counts[t]++
		}
	}
	for t, n := range counts {
		l := float64(logits[t])
		if p.RepeatPenalty > 0 && p.RepeatPenalty != 1 {
			if l > 0 {
				l /= p.RepeatPenalty
			} else {
				l *= p.RepeatPenalty
			}
		}
		l -= float64(n)*p.FrequencyPenalty + p.PresencePenalty
		logits[t] = float32(l)
	}
}
