// Package tokenizer turns text into model tokens and back, from the
// vocabulary stored in a GGUF file's tokenizer.* metadata. It implements
// llama.cpp's SentencePiece-style tokenizer ("llama") and its byte-level BPE
// tokenizer ("gpt2" with the gpt-2, llama-bpe/llama3 and qwen2 pre-tokenizers)
// so that token ids match llama.cpp's for the same vocabulary.
package tokenizer

import (
	"container/heap"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"unicode/utf8"
)

// Token attributes, from tokenizer.ggml.token_type.
const (
	typeNormal      = 1
	typeUnknown     = 2
	typeControl     = 3
	typeUserDefined = 4
	typeUnused      = 5
	typeByte        = 6
)

// Kind is the tokenizer algorithm.
type Kind int

// Tokenizer kinds.
const (
	SPM Kind = iota
	BPE
)

// Meta is what the tokenizer needs from the model file's metadata.
type Meta interface {
	String(key string) (string, bool)
	Strings(key string) ([]string, bool)
	Float32s(key string) ([]float32, bool)
	Int32s(key string) ([]int32, bool)
	Uint(key string) (uint64, bool)
	Bool(key string) (bool, bool)
}

// Tokenizer is immutable after construction (but for its work counter) and
// safe for concurrent use.
type Tokenizer struct {
	kind     Kind
	pre      string
	tokens   []string
	scores   []float32
	types    []int32
	ids      map[string]int32
	ranks    map[[2]string]int
	special  []int32 // control, user-defined and unknown tokens, longest text first
	byteTok  [256]int32
	BOS, EOS int32
	// EOT and other end-of-generation tokens (eos, eot, eom, im_end...).
	EOG            map[int32]bool
	AddBOS, AddEOS bool
	addSpacePrefix bool
	ignoreMerges   bool
	digitGroup     int // 3 for llama3, 1 for qwen2, 0 for gpt-2 style
	// maxPiece is the most input bytes one token can stand for, or 0 when
	// some byte has no token (its text is then dropped, so the byte length
	// of a text says nothing about its token count).
	maxPiece int
	// merged counts the input bytes that went through merging, so tests can
	// see that a refused prompt was never tokenized.
	merged atomic.Int64
}

// ErrVocab is wrapped by errors about unusable tokenizer metadata.
var ErrVocab = errors.New("tokenizer: unusable vocabulary")

// New builds a tokenizer from GGUF metadata.
func New(m Meta) (*Tokenizer, error) {
	model, _ := m.String("tokenizer.ggml.model")
	t := &Tokenizer{BOS: -1, EOS: -1, EOG: map[int32]bool{}}
	switch model {
	case "llama":
		t.kind = SPM
		t.addSpacePrefix = true
	case "gpt2":
		t.kind = BPE
	default:
		return nil, fmt.Errorf("%w: tokenizer.ggml.model %q is not supported (want llama or gpt2)", ErrVocab, model)
	}
	var ok bool
	if t.tokens, ok = m.Strings("tokenizer.ggml.tokens"); !ok || len(t.tokens) == 0 {
		return nil, fmt.Errorf("%w: tokenizer.ggml.tokens missing", ErrVocab)
	}
	n := len(t.tokens)
	t.scores, _ = m.Float32s("tokenizer.ggml.scores")
	if t.scores != nil && len(t.scores) != n {
		return nil, fmt.Errorf("%w: %d scores for %d tokens", ErrVocab, len(t.scores), n)
	}
	t.types, _ = m.Int32s("tokenizer.ggml.token_type")
	if t.types != nil && len(t.types) != n {
		return nil, fmt.Errorf("%w: %d token types for %d tokens", ErrVocab, len(t.types), n)
	}
	if t.types == nil {
		t.types = make([]int32, n)
		for i := range t.types {
			t.types[i] = typeNormal
		}
	}
	t.ids = make(map[string]int32, n)
	for i, s := range t.tokens {
		if _, dup := t.ids[s]; !dup {
			t.ids[s] = int32(i)
		}
	}
	id := func(key string) int32 {
		v, ok := m.Uint(key)
		if !ok || v >= uint64(n) {
			return -1
		}
		return int32(v)
	}
	t.BOS, t.EOS = id("tokenizer.ggml.bos_token_id"), id("tokenizer.ggml.eos_token_id")
	for _, k := range []string{"eos", "eot", "eom"} {
		if v := id("tokenizer.ggml." + k + "_token_id"); v >= 0 {
			t.EOG[v] = true
		}
	}
	// Chat formats end turns with these even when the file names another eos.
	for _, s := range []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "<end_of_turn>", "<|eom_id|>"} {
		if v, ok := t.ids[s]; ok && t.types[v] == typeControl {
			t.EOG[v] = true
		}
	}
	if t.kind == SPM {
		t.AddBOS = true
		if v, ok := m.Bool("tokenizer.ggml.add_space_prefix"); ok {
			t.addSpacePrefix = v
		}
		for b := range 256 {
			t.byteTok[b] = -1
			if v, ok := t.ids[fmt.Sprintf("<0x%02X>", b)]; ok {
				t.byteTok[b] = v
			}
		}
	} else {
		t.pre, _ = m.String("tokenizer.ggml.pre")
		switch t.pre {
		case "llama-bpe", "llama3", "smaug-bpe", "dbrx":
			t.digitGroup, t.ignoreMerges = 3, true
		case "qwen2", "stablelm2":
			t.digitGroup = 1
		case "gpt-2", "gpt2", "default", "":
			t.digitGroup = 0
		default:
			return nil, fmt.Errorf("%w: BPE pre-tokenizer %q is not supported (want gpt-2, llama-bpe or qwen2)", ErrVocab, t.pre)
		}
		merges, ok := m.Strings("tokenizer.ggml.merges")
		if !ok {
			return nil, fmt.Errorf("%w: tokenizer.ggml.merges missing", ErrVocab)
		}
		t.ranks = make(map[[2]string]int, len(merges))
		for i, mg := range merges {
			a, b, ok := strings.Cut(mg, " ")
			if !ok {
				return nil, fmt.Errorf("%w: merge %d %q has no space", ErrVocab, i, mg)
			}
			if _, dup := t.ranks[[2]string{a, b}]; !dup {
				t.ranks[[2]string{a, b}] = i
			}
		}
	}
	if v, ok := m.Bool("tokenizer.ggml.add_bos_token"); ok {
		t.AddBOS = v
	}
	if v, ok := m.Bool("tokenizer.ggml.add_eos_token"); ok {
		t.AddEOS = v
	}
	if t.AddBOS && t.BOS < 0 {
		t.AddBOS = false
	}
	for i, ty := range t.types {
		if ty == typeControl || ty == typeUserDefined || ty == typeUnknown {
			if t.tokens[i] != "" {
				t.special = append(t.special, int32(i))
			}
		}
	}
	sort.SliceStable(t.special, func(a, b int) bool {
		return len(t.tokens[t.special[a]]) > len(t.tokens[t.special[b]])
	})
	t.maxPiece = t.longestPiece()
	return t, nil
}

// longestPiece is the byte length of the longest text one token covers,
// or 0 when some byte cannot be tokenized at all.
func (t *Tokenizer) longestPiece() int {
	for b := range 256 {
		if t.kind == SPM && t.byteTok[b] < 0 {
			return 0
		}
		if _, ok := t.ids[string(byteToRune[b])]; t.kind == BPE && !ok {
			return 0
		}
	}
	n := 1
	for id := range t.tokens {
		n = max(n, len(t.Piece(int32(id), true)))
	}
	return n
}

// MaxPieceBytes is the most input bytes one token can stand for (a text of
// n bytes is at least n/MaxPieceBytes tokens), or 0 when the vocabulary
// cannot tokenize every byte and so gives no such bound.
func (t *Tokenizer) MaxPieceBytes() int { return t.maxPiece }

// MergedBytes is how many input bytes this tokenizer has run its merges
// over since it was built.
func (t *Tokenizer) MergedBytes() int64 { return t.merged.Load() }

// VocabSize is the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Lookup returns the id of a token's exact text.
func (t *Tokenizer) Lookup(s string) (int32, bool) {
	v, ok := t.ids[s]
	return v, ok
}

type fragment struct {
	text  string
	token int32 // >= 0 for a special token
}

// partition splits text on special-token texts (user-defined ones always,
// control and unknown ones only when parseSpecial), longest token first.
func (t *Tokenizer) partition(text string, parseSpecial bool) []fragment {
	frags := []fragment{{text: text, token: -1}}
	for _, id := range t.special {
		ty := t.types[id]
		if !parseSpecial && (ty == typeControl || ty == typeUnknown) {
			continue
		}
		s := t.tokens[id]
		var out []fragment
		for _, f := range frags {
			if f.token >= 0 {
				out = append(out, f)
				continue
			}
			rest := f.text
			for {
				i := strings.Index(rest, s)
				if i < 0 {
					break
				}
				if i > 0 {
					out = append(out, fragment{text: rest[:i], token: -1})
				}
				out = append(out, fragment{token: id})
				rest = rest[i+len(s):]
			}
			if rest != "" {
				out = append(out, fragment{text: rest, token: -1})
			}
		}
		frags = out
	}
	return frags
}

// Encode tokenizes text. addSpecial adds BOS/EOS as the model asks;
// parseSpecial recognises control-token texts such as "<|im_start|>".
func (t *Tokenizer) Encode(text string, addSpecial, parseSpecial bool) []int32 {
	out, _ := t.EncodeLimit(text, addSpecial, parseSpecial, -1)
	return out
}

// EncodeLimit is Encode that gives up once more than limit tokens are out
// (limit < 0: no limit), returning false and the tokens so far, a prefix of
// Encode's answer. It stops at the first special token or byte-level BPE
// word past the limit; a SentencePiece fragment (the text between two
// special tokens) merges as a whole, since its merges may cross spaces.
func (t *Tokenizer) EncodeLimit(text string, addSpecial, parseSpecial bool, limit int) ([]int32, bool) {
	over := func(out []int32) bool { return limit >= 0 && len(out) > limit }
	var out []int32
	if addSpecial && t.AddBOS {
		out = append(out, t.BOS)
	}
	var frags []fragment
	if text != "" {
		frags = t.partition(text, parseSpecial)
	}
	prevSpecial := true
	for _, f := range frags {
		if over(out) {
			return out, false
		}
		if f.token >= 0 {
			out = append(out, f.token)
			prevSpecial = true
			continue
		}
		if t.kind == SPM {
			s := f.text
			if t.addSpacePrefix && prevSpecial {
				s = " " + s
			}
			t.merged.Add(int64(len(f.text)))
			out = t.spm(strings.ReplaceAll(s, " ", "\u2581"), out)
		} else {
			out = t.bpe(f.text, out, limit)
		}
		prevSpecial = false
	}
	if addSpecial && t.AddEOS && t.EOS >= 0 {
		out = append(out, t.EOS)
	}
	return out, !over(out)
}

type symbol struct {
	start, n   int
	prev, next int
}

type bigram struct {
	left, right int
	score       float32 // SPM: higher first
	rank        int     // BPE: lower first
	size        int
	text        string
}

// queue is a priority queue of candidate merges ordered by less.
type queue struct {
	items []bigram
	less  func(a, b *bigram) bool
}

func (q *queue) Len() int           { return len(q.items) }
func (q *queue) Less(i, j int) bool { return q.less(&q.items[i], &q.items[j]) }
func (q *queue) Swap(i, j int)      { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *queue) Push(x any)         { q.items = append(q.items, x.(bigram)) }
func (q *queue) Pop() any {
	x := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return x
}

// SentencePiece merges the highest score first, BPE the lowest rank; ties
// go to the leftmost pair, as in llama.cpp.
func spmFirst(a, b *bigram) bool {
	return a.score > b.score || (a.score == b.score && a.left < b.left)
}

func bpeFirst(a, b *bigram) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
}

// merge joins symbol right into symbol left in the linked list.
func merge(syms []symbol, left, right int) {
	l, r := &syms[left], &syms[right]
	l.n += r.n
	r.n = 0
	l.next = r.next
	if r.next >= 0 {
		syms[r.next].prev = left
	}
}

func splitChars(text string) []symbol {
	var syms []symbol
	for off := 0; off < len(text); {
		n := utf8Len(text[off])
		n = min(n, len(text)-off)
		syms = append(syms, symbol{start: off, n: n, prev: len(syms) - 1, next: len(syms) + 1})
		off += n
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	return syms
}

// utf8Len is the sequence length a lead byte announces (1 for stray bytes),
// as llama.cpp's unicode_len_utf8 computes it.
func utf8Len(b byte) int {
	switch {
	case b < 0x80:
		return 1
	case b>>5 == 0x6:
		return 2
	case b>>4 == 0xe:
		return 3
	case b>>3 == 0x1e:
		return 4
	}
	return 1
}

func (t *Tokenizer) spm(text string, out []int32) []int32 {
	syms := splitChars(text)
	q := &queue{less: spmFirst}
	revMerge := map[string][2]int{}
	try := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		s := text[syms[l].start : syms[l].start+syms[l].n+syms[r].n]
		id, ok := t.ids[s]
		if !ok {
			return
		}
		var score float32
		if t.scores != nil {
			score = t.scores[id]
		}
		heap.Push(q, bigram{left: l, right: r, score: score, size: len(s)})
		revMerge[s] = [2]int{l, r}
	}
	for i := 1; i < len(syms); i++ {
		try(i-1, i)
	}
	for q.Len() > 0 {
		b := heap.Pop(q).(bigram)
		l, r := &syms[b.left], &syms[b.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue
		}
		merge(syms, b.left, b.right)
		try(l.prev, b.left)
		try(b.left, l.next)
	}
	var reseg func(s symbol)
	reseg = func(s symbol) {
		piece := text[s.start : s.start+s.n]
		if id, ok := t.ids[piece]; ok {
			out = append(out, id)
			return
		}
		if p, ok := revMerge[piece]; ok {
			reseg(syms[p[0]])
			reseg(syms[p[1]])
			return
		}
		for i := 0; i < len(piece); i++ {
			if id := t.byteTok[piece[i]]; id >= 0 {
				out = append(out, id)
			}
		}
	}
	for i := 0; i != -1 && len(syms) > 0; i = syms[i].next {
		// A merged symbol's own span is its final text; reseg needs it with
		// the length it had when the merge was recorded, which is the same.
		reseg(syms[i])
	}
	return out
}

// bpe appends text's tokens to out, stopping after the word that takes out
// past limit (limit < 0: no limit).
func (t *Tokenizer) bpe(text string, out []int32, limit int) []int32 {
	for _, word := range preTokenize(text, t.digitGroup) {
		if limit >= 0 && len(out) > limit {
			return out
		}
		t.merged.Add(int64(len(word)))
		w := byteEncode(word)
		if t.ignoreMerges {
			if id, ok := t.ids[w]; ok {
				out = append(out, id)
				continue
			}
		}
		syms := splitChars(w)
		q := &queue{less: bpeFirst}
		add := func(l, r int) {
			if l < 0 || r < 0 {
				return
			}
			a := w[syms[l].start : syms[l].start+syms[l].n]
			b := w[syms[r].start : syms[r].start+syms[r].n]
			rank, ok := t.ranks[[2]string{a, b}]
			if !ok {
				return
			}
			heap.Push(q, bigram{left: l, right: r, rank: rank, text: a + b})
		}
		for i := 1; i < len(syms); i++ {
			add(i-1, i)
		}
		for q.Len() > 0 {
			b := heap.Pop(q).(bigram)
			l, r := &syms[b.left], &syms[b.right]
			if l.n == 0 || r.n == 0 {
				continue
			}
			if w[l.start:l.start+l.n]+w[r.start:r.start+r.n] != b.text {
				continue
			}
			merge(syms, b.left, b.right)
			add(l.prev, b.left)
			add(b.left, l.next)
		}
		for _, s := range syms {
			if s.n == 0 {
				continue
			}
			piece := w[s.start : s.start+s.n]
			if id, ok := t.ids[piece]; ok {
				out = append(out, id)
				continue
			}
			for i := 0; i < len(piece); i++ {
				if id, ok := t.ids[piece[i:i+1]]; ok {
					out = append(out, id)
				}
			}
		}
	}
	return out
}

// Piece returns the bytes token id stands for. Control tokens render as
// their text only when special is true.
func (t *Tokenizer) Piece(id int32, special bool) []byte {
	if id < 0 || int(id) >= len(t.tokens) {
		return nil
	}
	s := t.tokens[id]
	switch t.types[id] {
	case typeControl, typeUnknown, typeUnused:
		if !special {
			return nil
		}
		return []byte(s)
	case typeUserDefined:
		return []byte(s)
	case typeByte:
		var b byte
		if _, err := fmt.Sscanf(s, "<0x%02X>", &b); err == nil {
			return []byte{b}
		}
	}
	if t.kind == SPM {
		return []byte(strings.ReplaceAll(s, "\u2581", " "))
	}
	return byteDecode(s)
}

// Decode concatenates the pieces of ids (control tokens omitted). With
// SPM, the leading space the tokenizer added is removed.
func (t *Tokenizer) Decode(ids []int32) string {
	var b []byte
	first := true
	for _, id := range ids {
		p := t.Piece(id, false)
		if len(p) == 0 {
			continue
		}
		if first && t.kind == SPM && t.addSpacePrefix && p[0] == ' ' {
			p = p[1:]
		}
		first = false
		b = append(b, p...)
	}
	return string(b)
}

// IsEOG reports whether id ends generation.
func (t *Tokenizer) IsEOG(id int32) bool { return t.EOG[id] }

// byte-level BPE maps every byte to a printable code point (GPT-2 scheme).
var byteToRune, runeToByte = func() ([256]rune, map[rune]byte) {
	var b2r [256]rune
	r2b := map[rune]byte{}
	n := 0
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff) {
			b2r[b] = rune(b)
		} else {
			b2r[b] = rune(256 + n)
			n++
		}
		r2b[b2r[b]] = byte(b)
	}
	return b2r, r2b
}()

func byteEncode(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		sb.WriteRune(byteToRune[s[i]])
	}
	return sb.String()
}

func byteDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if b, ok := runeToByte[r]; ok {
			out = append(out, b)
		} else {
			out = utf8.AppendRune(out, r)
		}
	}
	return out
}
