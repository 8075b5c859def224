package tokenizer_test

import (
	"fmt"
	"testing"
	"unicode/utf8"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/tokenizer"
)

// smallSPM is a byte-fallback SentencePiece vocabulary with a few merges.
func smallSPM(t testing.TB) *tokenizer.Tokenizer {
	tokens := []string{"<unk>", "<s>", "</s>"}
	types := []int32{2, 3, 3}
	for b := range 256 {
		tokens = append(tokens, fmt.Sprintf("<0x%02X>", b))
		types = append(types, 6)
	}
	for _, w := range []string{"\u2581", "\u2581t", "\u2581th", "\u2581the", "he", "e", "h", "t", "a", "n", "\u2581a", "an", "\u2581an"} {
		tokens = append(tokens, w)
		types = append(types, 1)
	}
	scores := make([]float32, len(tokens))
	for i := range scores {
		scores[i] = -float32(i)
	}
	var w gguf.Writer
	w.Set("tokenizer.ggml.model", "llama")
	w.Set("tokenizer.ggml.tokens", tokens)
	w.Set("tokenizer.ggml.scores", scores)
	w.Set("tokenizer.ggml.token_type", types)
	w.Set("tokenizer.ggml.bos_token_id", uint32(1))
	w.Set("tokenizer.ggml.eos_token_id", uint32(2))
	f, err := w.File()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.New(f)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// FuzzSPMRoundTrip: with byte fallback every valid UTF-8 text survives
// encode then decode unchanged.
func FuzzSPMRoundTrip(f *testing.F) {
	tok := smallSPM(f)
	for _, s := range []string{"", "the", " an ant", "héllo wörld 🦙", "\n\t  x", "<s>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s, true, false)
		if len(ids) == 0 || ids[0] != tok.BOS {
			t.Fatalf("no BOS in %v", ids)
		}
		if !utf8.ValidString(s) {
			return
		}
		if got := tok.Decode(ids); got != s {
			t.Fatalf("Decode(Encode(%q)) = %q (ids %v)", s, got, ids)
		}
	})
}
