package demo_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
	"github.com/llmctl/llmctl/pkg/serve/engine/demo"
	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/internal/llamaref"
	"github.com/llmctl/llmctl/pkg/serve/engine/model"
	"github.com/llmctl/llmctl/pkg/serve/engine/synth"
	"github.com/llmctl/llmctl/pkg/serve/engine/tokenizer"
)

func embedded(t *testing.T) *gguf.File {
	t.Helper()
	var buf bytes.Buffer
	if err := engine.WriteDemo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func meanNLL(t *testing.T, f *gguf.File, verses []string) float64 {
	t.Helper()
	nll, err := demo.EngineNLL(f, verses)
	if err != nil {
		t.Fatal(err)
	}
	return nll
}

// TestEmbeddedModel: the bundled file is the trained model under its
// name, small, and on held-out verses far better than both a uniform guess
// and a random-weight model of the same shape and vocabulary (what the
// demo used to be).
func TestEmbeddedModel(t *testing.T) {
	f := embedded(t)
	if name, _ := f.String("general.name"); name != engine.DemoName || demo.Name != engine.DemoName {
		t.Fatalf("file name %q, demo.Name %q, engine.DemoName %q", name, demo.Name, engine.DemoName)
	}
	var buf bytes.Buffer
	_ = engine.WriteDemo(&buf)
	if buf.Len() > 20<<20 {
		t.Fatalf("demo model is %d bytes, over 20 MB", buf.Len())
	}
	verses := demo.HeldOutForTest(t)[:100]
	trained := meanNLL(t, f, verses)

	m, err := model.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	var rnd bytes.Buffer
	shape := synth.Shape{Name: "random", Embd: m.Embd, Layers: m.Layers, Heads: m.Heads, KVHeads: m.KVHeads,
		FF: m.FF, Context: m.Context, RopeBase: m.RopeBase}
	if err := synth.Write(&rnd, shape, f, 2024); err != nil {
		t.Fatal(err)
	}
	rf, err := gguf.Parse(rnd.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	random := meanNLL(t, rf, verses)
	uniform := math.Log(float64(m.Vocab))
	t.Logf("held-out perplexity: trained %.1f, random weights %.1f, uniform %.0f (%d verses)",
		math.Exp(trained), math.Exp(random), math.Exp(uniform), len(verses))
	// a twentieth of the uniform perplexity or less, and of the random model's
	if trained > uniform-math.Log(20) || trained > random-math.Log(20) {
		t.Fatalf("held-out perplexity %.1f is not far below uniform %.0f and random %.1f",
			math.Exp(trained), math.Exp(uniform), math.Exp(random))
	}
}

// TestGreedyEnglish: a fixed greedy continuation is English words of the
// corpus separated by spaces, not fragments run together.
func TestGreedyEnglish(t *testing.T) {
	b, err := engine.OpenDemo(engine.Options{Threads: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, prompt := range []string{"And God said", "Tell me about the sea"} {
		body, _ := json.Marshal(map[string]any{"prompt": prompt, "max_tokens": 32, "temperature": 0})
		resp, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointCompletions, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			Choices []struct{ Text string } `json:"choices"`
		}
		if err := json.Unmarshal(resp.Body, &a); err != nil || len(a.Choices) != 1 {
			t.Fatalf("answer %s: %v", resp.Body, err)
		}
		text := a.Choices[0].Text
		t.Logf("%q → %q", prompt, text)
		words, whole := 0, 0
		for _, w := range strings.Fields(text) {
			w = strings.Trim(w, ",.;:?!()'")
			if w == "" {
				continue
			}
			words++
			for _, r := range w {
				if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || r == '\'') {
					t.Fatalf("word %q of %q is not letters", w, text)
				}
			}
			if _, ok := b.Tokenizer().Lookup("\u2581" + w); ok {
				whole++ // a word the vocabulary learned as a whole
			}
		}
		if words < 12 || whole < words*9/10 {
			t.Fatalf("%q: %d words, %d of them corpus words: %q", prompt, words, whole, text)
		}
	}
}

// TestMatchesLlamaCpp: llama.cpp runs the demo file as an ordinary llama
// model and decodes the same greedy tokens as the engine.
func TestMatchesLlamaCpp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "demo.gguf")
	var buf bytes.Buffer
	if err := engine.WriteDemo(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	f := embedded(t)
	tok, err := tokenizer.New(f)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	const steps = 48
	prompt := tok.Encode("In the beginning God created the heaven and the earth.", true, false)
	want, _ := llamaref.Greedy(t, path, steps, prompt)
	cache := m.NewCache(len(prompt) + steps)
	ws := m.NewWorkspace(1)
	logits := make([]float32, m.Vocab)
	in := prompt
	var got []int32
	for range steps {
		if err := m.Step(ws, []model.Seq{{Cache: cache, Tokens: in, Logits: logits}}); err != nil {
			t.Fatal(err)
		}
		best := int32(0)
		for i, l := range logits {
			if l > logits[best] {
				best = int32(i)
			}
		}
		got = append(got, best)
		in = []int32{best}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("greedy tokens differ:\nengine    %q\nllama.cpp %q", tok.Decode(got), tok.Decode(want))
	}
	t.Logf("llama.cpp and the engine agree on %d greedy tokens: %q", steps, tok.Decode(got))
}

// FuzzReadVerses: any input reads without panicking into trimmed,
// non-empty single-line verses.
func FuzzReadVerses(f *testing.F) {
	f.Add("Ge1:1 In the beginning God created the heaven and the earth.\n")
	f.Add("1Co13:4 Charity suffereth long, and is kind;\n\n  \nno reference here\r\n")
	f.Add("Re22:21")
	f.Fuzz(func(t *testing.T, in string) {
		v, err := demo.ReadVerses(bufio.NewReader(strings.NewReader(in)))
		if err != nil {
			return // over-long lines are an error, not a panic
		}
		for _, s := range v {
			if s == "" || strings.ContainsAny(s, "\n") || strings.TrimSpace(s) != s {
				t.Fatalf("verse %q from %q", s, in)
			}
		}
	})
}
