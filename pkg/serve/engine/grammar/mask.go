package grammar

import (
	"math"
	"unicode/utf8"
)

// Vocab is what masking needs of a tokenizer: each token's bytes as they
// are emitted, and which tokens end generation.
type Vocab struct {
	Pieces [][]byte
	EOG    func(int32) bool
	// runes[id] > 0: the piece is that many characters that may stand in
	// a JSON string as they are (no quote, backslash or control byte,
	// whole UTF-8), so inside a string it needs no recognizer run.
	runes []int32
}

// NewVocab prepares a vocabulary for masking.
func NewVocab(pieces [][]byte, eog func(int32) bool) *Vocab {
	v := &Vocab{Pieces: pieces, EOG: eog, runes: make([]int32, len(pieces))}
	for id, p := range pieces {
		if len(p) == 0 || !utf8.Valid(p) || eog(int32(id)) {
			continue
		}
		plain := true
		for _, b := range p {
			if b < 0x20 || b == '"' || b == '\\' {
				plain = false
				break
			}
		}
		if plain {
			v.runes[id] = int32(utf8.RuneCount(p))
		}
	}
	return v
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
	var scratch []run   // alternatives of the copy a token is tried on
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
			t := s.fork(&scratch)
			if t.feed(p[0]) {
				first[p[0]] = 1
			} else {
				first[p[0]] = -1
				return -1
			}
		}
		t := s.fork(&scratch)
		if !t.Feed(p) {
			return -1
		}
		return t.MinRemaining()
	}
	// Inside a string, plain pieces only add characters: what is left
	// after them follows from what is left now (for each run, when an
	// anyOf keeps several alive, all inside a string).
	type strRun struct{ base, room, owed int }
	var strRuns [4]strRun
	inStr := strRuns[:0]
	inString := v.runes != nil
	for i := 0; inString && i <= len(s.more); i++ {
		r := &s.r
		if i > 0 {
			r = &s.more[i-1]
		}
		f := &r.stack[max(r.depth-1, 0)]
		if r.depth == 0 || f.k != kString || f.phase != 1 || f.aux != 0 {
			inString = false
			break
		}
		sr := strRun{base: r.minRemaining(), room: math.MaxInt, owed: max(f.n.minLen-int(f.i), 0)}
		if f.n.maxLen >= 0 {
			sr.room = f.n.maxLen - int(f.i)
		}
		inStr = append(inStr, sr)
	}
	var one strRun // the usual case: a single run
	if len(inStr) > 0 {
		one = inStr[0]
	}
	left := make([]int, len(logits))
	best := -1 // the least left by any allowed token
	fits := false
	for id := range logits {
		left[id] = -1
		if logits[id] == negInf {
			continue
		}
		var r int
		if n := v.plainRunes(id, inString); n > 0 {
			if len(inStr) == 1 {
				if n > one.room {
					continue
				}
				r = one.base - min(n, one.owed)
			} else {
				r = -1
				for _, sr := range inStr {
					if n <= sr.room && (r < 0 || sr.base-min(n, sr.owed) < r) {
						r = sr.base - min(n, sr.owed)
					}
				}
				if r < 0 {
					continue
				}
			}
		} else {
			r = rest(id)
		}
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

// plainRunes is runes[id] when inside a string, else 0.
func (v *Vocab) plainRunes(id int, inString bool) int {
	if !inString {
		return 0
	}
	return int(v.runes[id])
}
