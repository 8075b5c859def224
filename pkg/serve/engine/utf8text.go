package engine

import (
	"unicode/utf8"
)

// completeLen is how many leading bytes of b hold whole characters: b minus
// a trailing UTF-8 sequence that is still valid so far but incomplete, which
// the next token (a byte-fallback <0x..> token, or a BPE piece that ends
// mid-character) may complete. Bytes that can never start or continue a
// valid character count as complete: they are invalid whatever follows.
func completeLen(b []byte) int {
	n := len(b)
	for i := 1; i <= utf8.UTFMax-1 && i <= n; i++ {
		if c := b[n-i]; !utf8.RuneStart(c) {
			continue
		}
		if !utf8.FullRune(b[n-i:]) {
			return n - i
		}
		break
	}
	return n
}

// validText returns b as valid UTF-8, each byte that begins no valid
// character replaced by U+FFFD on its own, as encoding/json does. Replacing
// byte by byte (not run by run, like strings.ToValidUTF8) makes the result
// of pieces cut at completeLen concatenate to the result of the whole, so a
// stream's deltas add up to the non-streamed text.
func validText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		out = utf8.AppendRune(out, r) // RuneError, size 1, for an invalid byte
		b = b[size:]
	}
	return string(out)
}
