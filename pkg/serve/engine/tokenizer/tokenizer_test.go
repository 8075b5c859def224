package tokenizer_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/internal/llamaref"
	"github.com/llmctl/llmctl/pkg/serve/engine/tokenizer"
)

// TestVocabVectors checks every .inp/.out pair llama.cpp ships for the
// vocabularies we support, token for token.
func TestVocabVectors(t *testing.T) {
	dir := llamaref.VocabDir(t)
	for _, name := range []string{"llama-spm", "llama-bpe", "qwen2", "gpt-2"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "ggml-vocab-"+name+".gguf")
			tok := openVocab(t, path)
			inp, err := os.ReadFile(path + ".inp")
			if err != nil {
				t.Fatal(err)
			}
			outb, err := os.ReadFile(path + ".out")
			if err != nil {
				t.Fatal(err)
			}
			ins := splitInputs(string(inp))
			outs := strings.Split(strings.TrimSuffix(string(outb), "\n"), "\n")
			if len(ins) != len(outs) {
				t.Fatalf("%d inputs, %d outputs", len(ins), len(outs))
			}
			for i, in := range ins {
				var want []int32
				for _, f := range strings.Fields(outs[i]) {
					v, err := strconv.Atoi(f)
					if err != nil {
						t.Fatal(err)
					}
					want = append(want, int32(v))
				}
				got := tok.Encode(in, false, false)
				if !equal(got, want) {
					t.Errorf("case %d %q:\n got %v\nwant %v", i, in, got, want)
				}
			}
			t.Logf("%d cases", len(ins))
		})
	}
}

// openVocab builds the tokenizer of one of llama.cpp's vocabulary files.
func openVocab(t *testing.T, path string) *tokenizer.Tokenizer {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.New(f)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func equal(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// splitInputs splits on the separator the way llama.cpp's test reader does:
// a trailing separator does not start another (empty) case.
func splitInputs(s string) []string {
	const sep = "\n__ggml_vocab_test__\n"
	var out []string
	for s != "" {
		i := strings.Index(s, sep)
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i])
		s = s[i+len(sep):]
	}
	return out
}
