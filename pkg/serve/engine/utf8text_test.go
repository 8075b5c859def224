package engine

import (
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/tokenizer"
)

// demoTokenizer is the demo model's SentencePiece vocabulary: English words
// and <0x00>..<0xFF>, so other scripts come out one byte per token.
func demoTokenizer(t testing.TB) *tokenizer.Tokenizer {
	b, err := OpenDemo(Options{Threads: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.tok
}

// splitBPE is a byte-level BPE vocabulary whose pieces end and start in the
// middle of characters: "aé" is "a"+0xC3 then 0xA9.
func splitBPE(t testing.TB) *tokenizer.Tokenizer {
	var w gguf.Writer
	w.Set("tokenizer.ggml.model", "gpt2")
	// GPT-2's printable stand-ins for bytes 0xC3, 0xA9, 0xF0, 0x9F, 0xA6, 0x99:
	// Ã © ð Ł ¦ Ļ (the unprintable bytes 0x9F and 0x99 map to U+0141, U+013B).
	w.Set("tokenizer.ggml.tokens", []string{"!", "<s>", "</s>", "aÃ", "©b", "ð\u0141", "¦\u013b", "Ġx"})
	w.Set("tokenizer.ggml.token_type", []int32{1, 3, 3, 1, 1, 1, 1, 1})
	w.Set("tokenizer.ggml.merges", []string{})
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

// feed feeds ids through a job as the scheduler does (stops as given) and
// returns every delta, the final flush last.
func feed(tok *tokenizer.Tokenizer, ids []int32, stops []string) []string {
	j := &job{stops: stops}
	var deltas []string
	for _, id := range ids {
		j.bytes = append(j.bytes, tok.Piece(id, false)...)
		text := j.flush(false)
		if at := firstStop(text, stops); at >= 0 {
			return append(deltas, validText([]byte(text[:at])))
		}
		deltas = append(deltas, text)
	}
	return append(deltas, j.flush(true))
}

// pieces is the non-streamed text: every piece's bytes, made valid once.
func pieces(tok *tokenizer.Tokenizer, ids []int32) string {
	var b []byte
	for _, id := range ids {
		b = append(b, tok.Piece(id, false)...)
	}
	return validText(b)
}

func checkStream(t *testing.T, tok *tokenizer.Tokenizer, ids []int32) string {
	t.Helper()
	deltas := feed(tok, ids, nil)
	for i, d := range deltas {
		if !utf8.ValidString(d) {
			t.Fatalf("delta %d %q is not UTF-8 (ids %v)", i, d, ids)
		}
	}
	got, want := strings.Join(deltas, ""), pieces(tok, ids)
	if got != want {
		t.Fatalf("stream %q (deltas %q), whole %q (ids %v)", got, deltas, want, ids)
	}
	return got
}

// TestStreamHoldsSplitCharacters: characters spelled by byte-fallback
// tokens, or split across BPE pieces, reach the client whole, never as
// U+FFFD, and the deltas add up to the non-streamed text.
func TestStreamHoldsSplitCharacters(t *testing.T) {
	spm := demoTokenizer(t)
	const text = "the sea 🦙 λ 日本 é"
	ids := spm.Encode(text, false, false)
	if len(ids) < 15 {
		t.Fatalf("want byte-fallback tokens, got %v", ids)
	}
	got := checkStream(t, spm, ids)
	if strings.ContainsRune(got, utf8.RuneError) {
		t.Fatalf("U+FFFD in %q", got)
	}
	// Like llama.cpp's server (common_token_to_piece with lstrip 0 for each
	// sampled token), the first piece keeps its SentencePiece space: the
	// answer continues the prompt, so the space is the model's text.
	// Tokenizer.Decode strips it, as llama_detokenize does for a whole text.
	if got != " "+text || spm.Decode(ids) != text {
		t.Fatalf("stream %q, Decode %q", got, spm.Decode(ids))
	}

	bpe := splitBPE(t)
	ids = []int32{3, 4, 5, 6, 7} // "a\xC3" "\xA9b" "\xF0\x9F" "\xA6\x99" " x"
	deltas := feed(bpe, ids, nil)
	if want := []string{"a", "éb", "", "🦙", " x", ""}; strings.Join(deltas, "|") != strings.Join(want, "|") {
		t.Fatalf("deltas %q, want %q", deltas, want)
	}
	checkStream(t, bpe, ids)

	// A character cut by the end of the answer, or bytes that never form
	// one, become U+FFFD, one per byte, as encoding/json writes them.
	for _, tc := range []struct {
		ids  []int32
		want string
	}{
		{[]int32{3}, "a\uFFFD"},
		{[]int32{5, 7}, "\uFFFD\uFFFD x"},
		{[]int32{4, 4}, "\uFFFDb\uFFFDb"},
	} {
		if got := checkStream(t, bpe, tc.ids); got != tc.want {
			t.Errorf("ids %v: %q, want %q", tc.ids, got, tc.want)
		}
	}

	// A stop sequence with a multibyte character: held while it may still
	// match, and the text before it whole.
	ids = spm.Encode("la é! é?", false, false)
	deltas = feed(spm, ids, []string{"é?"})
	for _, d := range deltas {
		if !utf8.ValidString(d) {
			t.Fatalf("delta %q", d)
		}
	}
	if got := strings.Join(deltas, ""); got != " la é! " {
		t.Fatalf("with stop: %q (deltas %q)", got, deltas)
	}
}

// FuzzStreamUTF8: any token sequence streams as valid UTF-8 deltas whose
// concatenation is the whole decode.
func FuzzStreamUTF8(f *testing.F) {
	spm, bpe := demoTokenizer(f), splitBPE(f)
	f.Add([]byte{0, 3, 4, 5, 6, 7}, false)
	f.Add([]byte{0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3}, true)
	f.Add([]byte{0xE6 + 3, 0x97 + 3, 0xA5 + 3, 0xC3 + 3}, true)
	f.Fuzz(func(t *testing.T, raw []byte, useSPM bool) {
		tok := bpe
		if useSPM {
			tok = spm
		}
		ids := make([]int32, len(raw))
		for i, b := range raw {
			ids[i] = int32(int(b) % tok.VocabSize())
		}
		checkStream(t, tok, ids)
	})
}
