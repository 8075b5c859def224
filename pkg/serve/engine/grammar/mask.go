package grammar

import "math"

// Vocab is what masking needs of a tokenizer: each token's bytes as they
// are emitted, and which tokens end generation.
type Vocab struct {
	Pieces [][]byte
	EOG    func(int32) bool
}

var negInf = float32(math.Inf(-1))

// Mask sets to -Inf the logits of the tokens that s does not allow next.
// budget is the number of tokens that may still be generated, this one
// included: a token is allowed only if the shortest completion after it
// still fits (one byte per token at worst), so the answer is a whole value
// even when cut by max_tokens. End-of-generation tokens are allowed once
// the value is whole. If the budget rule leaves nothing, only the tokens
// that leave the least to write are allowed.
func (s *State) Mask(logits []float32, v *Vocab, budget int) {
	// Most tokens fail on their first byte: try each first byte once.
	var first [256]int8 // 0 untried, 1 allowed, -1 rejected
	// rest is what is left after token id, or -1 when the grammar refuses it.
	rest := func(id int) int {
		if v.EOG(int32(id)) {
			if s.Done() {
				return 0
			}
			return -1
		}
		p := v.Pieces[id]
		if len(p) == 0 {
			return -1
		}
		switch first[p[0]] {
		case -1:
			return -1
		case 0:
			t := *s
			if t.feed(p[0]) {
				first[p[0]] = 1
			} else {
				first[p[0]] = -1
				return -1
			}
		}
		t := *s
		if !t.Feed(p) {
			return -1
		}
		return t.MinRemaining()
	}
	left := make([]int, len(logits))
	best := -1 // the least left by any allowed token
	fits := false
	for id := range logits {
		left[id] = -1
		if logits[id] == negInf {
			continue
		}
		r := rest(id)
		left[id] = r
		if r >= 0 && (best < 0 || r < best) {
			best = r
		}
		if r >= 0 && r <= budget-1 {
			fits = true
		}
	}
	for id := range logits {
		r := left[id]
		switch {
		case r < 0:
			logits[id] = negInf
		case fits && r > budget-1:
			logits[id] = negInf
		case !fits && r > best:
			// Too little budget for any token at one byte each: close as
			// fast as the vocabulary allows.
			logits[id] = negInf
		}
	}
}
