package engine

import (
	"math"
	"sort"
	"unicode/utf8"
)

// tokenLogprob is one generated token's log probability and, with
// top_logprobs, the most likely alternatives at that step.
type tokenLogprob struct {
	piece   []byte
	logprob float64
	top     []alternative
}

type alternative struct {
	piece   []byte
	logprob float64
}

// logprobsOf computes the chosen token's log probability from the logits
// the sampler chose from (after penalties, logit_bias and any grammar
// mask; temperature 1), and the top n alternatives.
func logprobsOf(logits []float32, chosen int32, n int, piece func(int32) []byte) tokenLogprob {
	mx := math.Inf(-1)
	for _, l := range logits {
		mx = math.Max(mx, float64(l))
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l) - mx)
	}
	lse := mx + math.Log(sum)
	lp := tokenLogprob{piece: piece(chosen), logprob: float64(logits[chosen]) - lse}
	if n > 0 {
		ids := make([]int32, 0, 4*n)
		for i := range logits {
			ids = append(ids, int32(i))
		}
		sort.Slice(ids, func(a, b int) bool {
			la, lb := logits[ids[a]], logits[ids[b]]
			return la > lb || la == lb && ids[a] < ids[b]
		})
		for _, id := range ids[:min(n, len(ids))] {
			if math.IsInf(float64(logits[id]), -1) {
				break
			}
			lp.top = append(lp.top, alternative{piece(id), float64(logits[id]) - lse})
		}
	}
	return lp
}

// tokenText is a piece as a string for the token fields (a piece that is
// part of a UTF-8 character is shown with replacement characters; bytes
// carries it exactly).
func tokenText(p []byte) string {
	if utf8.Valid(p) {
		return string(p)
	}
	return string([]rune(string(p)))
}

func byteList(p []byte) []int {
	out := make([]int, len(p))
	for i, b := range p {
		out[i] = int(b)
	}
	return out
}

// chatLogprobs renders entries as chat's choice.logprobs.
func chatLogprobs(entries []tokenLogprob) map[string]any {
	content := make([]any, len(entries))
	for i, e := range entries {
		top := make([]any, len(e.top))
		for k, a := range e.top {
			top[k] = map[string]any{"token": tokenText(a.piece), "logprob": a.logprob, "bytes": byteList(a.piece)}
		}
		content[i] = map[string]any{"token": tokenText(e.piece), "logprob": e.logprob, "bytes": byteList(e.piece), "top_logprobs": top}
	}
	return map[string]any{"content": content, "refusal": nil}
}

// completionLogprobs renders entries as completions' choice.logprobs;
// offset is where the first token's text starts in the choice's text.
func completionLogprobs(entries []tokenLogprob, offset int) map[string]any {
	tokens := make([]string, len(entries))
	lps := make([]float64, len(entries))
	tops := make([]any, len(entries))
	offs := make([]int, len(entries))
	for i, e := range entries {
		tokens[i], lps[i], offs[i] = tokenText(e.piece), e.logprob, offset
		offset += len(e.piece)
		top := map[string]float64{}
		for _, a := range e.top {
			top[tokenText(a.piece)] = a.logprob
		}
		tops[i] = top
	}
	return map[string]any{"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offs}
}
