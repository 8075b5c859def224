package tokenizer_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve/engine/internal/llamaref"
)

// TestEncodeLimitStopsEarly: byte-level BPE stops merging at the first word
// past the limit, so a megabyte text costs a few words of work, and what it
// returns is the start of the full encoding.
func TestEncodeLimitStopsEarly(t *testing.T) {
	tok := openVocab(t, filepath.Join(llamaref.VocabDir(t), "ggml-vocab-llama-bpe.gguf"))
	if tok.MaxPieceBytes() <= 1 {
		t.Fatalf("MaxPieceBytes %d", tok.MaxPieceBytes())
	}
	text := strings.Repeat("Hello world, the sea is wide. ", 1<<20/30)
	const limit = 100
	before := tok.MergedBytes()
	got, ok := tok.EncodeLimit(text, true, false, limit)
	merged := tok.MergedBytes() - before
	if ok || len(got) <= limit || len(got) > limit+8 {
		t.Fatalf("EncodeLimit: ok %v, %d tokens for limit %d", ok, len(got), limit)
	}
	if merged > 1000 {
		t.Fatalf("merged %d bytes of %d to find %d tokens", merged, len(text), limit)
	}
	full := tok.Encode(text[:2000], true, false)
	if !slices.Equal(got, full[:len(got)]) {
		t.Fatalf("EncodeLimit is not a prefix of Encode:\n%v\n%v", got, full[:len(got)])
	}
	// Within the limit it is Encode.
	short := text[:300]
	if got, ok := tok.EncodeLimit(short, true, false, limit); !ok || !slices.Equal(got, tok.Encode(short, true, false)) {
		t.Fatalf("EncodeLimit under the limit: ok %v, %v", ok, got)
	}
}

// TestMaxPieceBytesBoundsTokens: no text encodes to fewer tokens than its
// bytes over MaxPieceBytes, whatever it is made of.
func TestMaxPieceBytesBoundsTokens(t *testing.T) {
	tok := smallSPM(t)
	p := tok.MaxPieceBytes()
	for _, s := range []string{"the the the", "an ant", "héllo wörld 🦙", strings.Repeat(" the", 50), "</s><s>"} {
		if n := len(tok.Encode(s, false, true)); n*p < len(s) {
			t.Errorf("%q: %d tokens of at most %d bytes cover %d bytes", s, n, p, len(s))
		}
	}
}
