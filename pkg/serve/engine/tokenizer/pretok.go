package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// isSpace is llama.cpp's whitespace set (Unicode White_Space).
func isSpace(r rune) bool {
	switch r {
	case 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

const outOfRange = -1

type cpts []rune

func (c cpts) at(i int) rune {
	if i < 0 || i >= len(c) {
		return outOfRange
	}
	return c[i]
}

func (c cpts) letter(i int) bool { r := c.at(i); return r >= 0 && unicode.IsLetter(r) }
func (c cpts) number(i int) bool { r := c.at(i); return r >= 0 && unicode.IsNumber(r) }
func (c cpts) space(i int) bool  { r := c.at(i); return r >= 0 && isSpace(r) }

// known reports whether i is inside the text: llama.cpp gives every code
// point (even unassigned ones) a non-empty flag set, and positions past the
// end an empty one.
func (c cpts) known(i int) bool { return i >= 0 && i < len(c) }

func decodeRunes(s string) cpts {
	out := make(cpts, 0, len(s))
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		out = append(out, r)
		s = s[n:]
	}
	return out
}

// preTokenize splits text the way the BPE pre-tokenizer regexes do.
// digitGroup 3 is llama3's pattern, 1 is qwen2's, 0 is gpt-2's.
func preTokenize(text string, digitGroup int) []string {
	c := decodeRunes(text)
	var ends []int
	if digitGroup == 0 {
		ends = splitGPT2(c)
	} else {
		ends = splitLlama3(c, digitGroup)
	}
	words := make([]string, 0, len(ends))
	prev := 0
	for _, e := range ends {
		words = append(words, string(c[prev:e]))
		prev = e
	}
	return words
}

// splitter records word ends, skipping empty words.
type splitter struct {
	ends []int
	prev int
}

func (s *splitter) add(end int) int {
	n := end - s.prev
	if n > 0 {
		s.ends = append(s.ends, end)
	}
	s.prev = end
	return n
}

// whitespace applies the trailing alternatives shared by the patterns,
// \s*[\r\n]+ (only with newlines), \s+(?!\S) and \s+, at pos and returns
// where the word ends (pos+1 when none matches).
func whitespace(c cpts, pos int, newlines bool) int {
	nws, lastRN := 0, 0
	for c.space(pos + nws) {
		if r := c.at(pos + nws); r == '\r' || r == '\n' {
			lastRN = pos + nws + 1
		}
		nws++
	}
	switch {
	case newlines && lastRN > 0:
		return lastRN
	case nws > 1 && c.at(pos+nws) != outOfRange:
		return pos + nws - 1
	case nws > 0:
		return pos + nws
	}
	return pos + 1
}

func contraction(c cpts, pos int) int {
	if c.at(pos) != '\'' || pos+1 >= len(c) {
		return 0
	}
	n := unicode.ToLower(c.at(pos + 1))
	if n == 's' || n == 't' || n == 'm' || n == 'd' {
		return 2
	}
	if pos+2 < len(c) {
		nn := unicode.ToLower(c.at(pos + 2))
		if (n == 'r' && nn == 'e') || (n == 'v' && nn == 'e') || (n == 'l' && nn == 'l') {
			return 3
		}
	}
	return 0
}

// splitLlama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,G}|
// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func splitLlama3(c cpts, group int) []int {
	var sp splitter
	add := sp.add
	for pos := 0; pos < len(c); {
		r := c.at(pos)
		if n := contraction(c, pos); n > 0 {
			pos += add(pos + n)
			continue
		}
		if !(r == '\r' || r == '\n' || c.number(pos)) {
			if c.letter(pos) || c.letter(pos+1) {
				pos++
				for c.letter(pos) {
					pos++
				}
				add(pos)
				continue
			}
		}
		if c.number(pos) {
			ini := pos
			for c.number(pos) {
				pos++
				if pos-ini >= group {
					add(pos)
					ini = pos
				}
			}
			add(pos)
			continue
		}
		p2 := pos
		if r == ' ' {
			p2 = pos + 1
		}
		if !(c.space(p2) || c.letter(p2) || c.number(p2)) && c.known(p2) && c.known(pos) {
			pos = p2
			for !(c.space(pos) || c.letter(pos) || c.number(pos)) && c.known(pos) {
				pos++
			}
			for r2 := c.at(pos); r2 == '\r' || r2 == '\n'; r2 = c.at(pos) {
				pos++
			}
			add(pos)
			continue
		}
		pos = whitespace(c, pos, true)
		add(pos)
	}
	return sp.ends
}

// splitGPT2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func splitGPT2(c cpts) []int {
	var sp splitter
	add := sp.add
	for pos := 0; pos < len(c); {
		r := c.at(pos)
		if r == '\'' && pos+1 < len(c) {
			n := c.at(pos + 1)
			if n == 's' || n == 't' || n == 'm' || n == 'd' {
				pos += add(pos + 2)
				continue
			}
			if pos+2 < len(c) {
				nn := c.at(pos + 2)
				if (n == 'r' && nn == 'e') || (n == 'v' && nn == 'e') || (n == 'l' && nn == 'l') {
					pos += add(pos + 3)
					continue
				}
			}
		}
		p2 := pos
		if r == ' ' {
			p2 = pos + 1
		}
		if c.letter(p2) {
			pos = p2 + 1
			for c.letter(pos) {
				pos++
			}
			add(pos)
			continue
		}
		if c.number(p2) {
			pos = p2 + 1
			for c.number(pos) {
				pos++
			}
			add(pos)
			continue
		}
		if !(c.space(p2) || c.letter(p2) || c.number(p2)) && c.known(p2) {
			pos = p2 + 1
			for !(c.space(pos) || c.letter(pos) || c.number(pos)) && c.known(pos) {
				pos++
			}
			add(pos)
			continue
		}
		pos = whitespace(c, pos, false)
		add(pos)
	}
	return sp.ends
}
