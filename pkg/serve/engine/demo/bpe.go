package demo

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/tokenizer"
)

// Token ids fixed by the llama SentencePiece convention.
const (
	tokUnk = 0
	tokBOS = 1
	tokEOS = 2
	// byte-fallback tokens <0x00>..<0xFF> follow the specials
	firstByte = 3
)

// Vocab is a SentencePiece-style vocabulary: specials, the 256 byte-fallback
// tokens, the corpus's characters, then one token per BPE merge. A merge's
// score falls with its rank, so llama's tokenizer (highest score first)
// applies the merges in the order they were learned.
type Vocab struct {
	Tokens []string
	Scores []float32
	Types  []int32
}

const space = "\u2581" // SentencePiece's visible space

// segments splits a verse the way the vocabulary is learned: words with the
// space that precedes them ("▁And"), and every other character alone
// (punctuation never joins a word, so "earth." is "▁earth" + ".").
func segments(text string, out []string) []string {
	for _, w := range strings.Fields(text) {
		first := true
		for w != "" {
			n := 0
			for n < len(w) {
				r, size := utf8.DecodeRuneInString(w[n:])
				if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					break
				}
				n += size
			}
			if n == 0 { // a single non-letter
				_, n = utf8.DecodeRuneInString(w)
				if first {
					out = append(out, space)
				}
				out = append(out, w[:n])
			} else if first {
				out = append(out, space+w[:n])
			} else {
				out = append(out, w[:n])
			}
			first = false
			w = w[n:]
		}
	}
	return out
}

// BuildVocab learns a vocabulary of size tokens from text by byte-pair
// merging of characters within segments. It is deterministic: ties go to
// the pair whose merged text sorts first.
func BuildVocab(text []string, size int) (*Vocab, error) {
	v := &Vocab{}
	add := func(tok string, score float32, typ int32) {
		v.Tokens = append(v.Tokens, tok)
		v.Scores = append(v.Scores, score)
		v.Types = append(v.Types, typ)
	}
	add("<unk>", 0, 2)
	add("<s>", 0, 3)
	add("</s>", 0, 3)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), 0, 6)
	}
	// count segments
	counts := map[string]int{}
	var segs []string
	for _, t := range text {
		segs = segments(t, segs[:0])
		for _, s := range segs {
			counts[s]++
		}
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	slices.Sort(words)
	// alphabet: every character, in code point order
	charSet := map[string]bool{space: true}
	for _, w := range words {
		for _, r := range w {
			charSet[string(r)] = true
		}
	}
	chars := make([]string, 0, len(charSet))
	for c := range charSet {
		chars = append(chars, c)
	}
	slices.Sort(chars)
	id := map[string]int{}
	for _, c := range chars {
		id[c] = len(v.Tokens)
		add(c, 0, 1)
	}
	if size < len(v.Tokens) {
		return nil, fmt.Errorf("demo: vocabulary of %d is smaller than its %d fixed tokens", size, len(v.Tokens))
	}
	// each distinct segment as a sequence of token ids
	type word struct {
		syms []int
		n    int
	}
	ws := make([]word, len(words))
	type pair [2]int
	pc := map[pair]int{}
	where := map[pair][]int{}
	for i, w := range words {
		for _, r := range w {
			ws[i].syms = append(ws[i].syms, id[string(r)])
		}
		ws[i].n = counts[w]
		for j := 1; j < len(ws[i].syms); j++ {
			p := pair{ws[i].syms[j-1], ws[i].syms[j]}
			pc[p] += ws[i].n
			where[p] = append(where[p], i)
		}
	}
	stamp := make([]int, len(ws))
	for merge := 1; len(v.Tokens) < size; merge++ {
		var best pair
		bestN := 0
		var bestText string
		for p, n := range pc {
			if n <= 0 || n < bestN {
				continue
			}
			text := v.Tokens[p[0]] + v.Tokens[p[1]]
			if n > bestN || text < bestText {
				best, bestN, bestText = p, n, text
			}
		}
		if bestN < 2 {
			break // nothing left worth a token
		}
		if _, dup := id[bestText]; dup {
			// the same text reached by another split: reuse its token
			delete(pc, best)
			continue
		}
		z := len(v.Tokens)
		id[bestText] = z
		add(bestText, -float32(merge), 1)
		for _, i := range where[best] {
			if stamp[i] == merge {
				continue
			}
			stamp[i] = merge
			w := &ws[i]
			for j := 1; j < len(w.syms); j++ {
				pc[pair{w.syms[j-1], w.syms[j]}] -= w.n
			}
			out := w.syms[:0]
			for j := 0; j < len(w.syms); j++ {
				if j+1 < len(w.syms) && w.syms[j] == best[0] && w.syms[j+1] == best[1] {
					out = append(out, z)
					j++
				} else {
					out = append(out, w.syms[j])
				}
			}
			w.syms = out
			for j := 1; j < len(w.syms); j++ {
				p := pair{w.syms[j-1], w.syms[j]}
				pc[p] += w.n
				if w.syms[j-1] == z || w.syms[j] == z {
					where[p] = append(where[p], i)
				}
			}
		}
		delete(pc, best)
		delete(where, best)
	}
	return v, nil
}

// setMeta writes the vocabulary as llama tokenizer metadata.
func (v *Vocab) setMeta(w *gguf.Writer) {
	w.Set("tokenizer.ggml.model", "llama")
	w.Set("tokenizer.ggml.tokens", v.Tokens)
	w.Set("tokenizer.ggml.scores", v.Scores)
	w.Set("tokenizer.ggml.token_type", v.Types)
	w.Set("tokenizer.ggml.bos_token_id", uint32(tokBOS))
	w.Set("tokenizer.ggml.eos_token_id", uint32(tokEOS))
	w.Set("tokenizer.ggml.unknown_token_id", uint32(tokUnk))
	w.Set("tokenizer.ggml.add_bos_token", true)
	w.Set("tokenizer.ggml.add_eos_token", false)
}

// Tokenizer returns the engine's tokenizer for v, so the corpus is split
// exactly as the served model will split prompts.
func (v *Vocab) Tokenizer() (*tokenizer.Tokenizer, error) {
	var w gguf.Writer
	v.setMeta(&w)
	var buf strings.Builder
	if _, err := w.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("demo: vocabulary: %w", err)
	}
	f, err := gguf.Parse([]byte(buf.String()))
	if err != nil {
		return nil, fmt.Errorf("demo: vocabulary: %w", err)
	}
	tok, err := tokenizer.New(f)
	if err != nil {
		return nil, fmt.Errorf("demo: vocabulary: %w", err)
	}
	return tok, nil
}
