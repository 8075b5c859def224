package model_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/internal/llamaref"
	"github.com/llmctl/llmctl/pkg/serve/engine/model"
	"github.com/llmctl/llmctl/pkg/serve/engine/synth"
	"github.com/llmctl/llmctl/pkg/serve/engine/tokenizer"
)

// embedTolerance bounds max |Δ| between the L2-normalized mean-pooled
// embeddings (components of a unit vector of 256 values, typically ~0.06).
// The hidden states follow llama.cpp's operations as the logits do; the mean
// is a plain sum here and a matrix product in llama.cpp, so the last bits of
// the pooled values differ. Measured with ggml's AVX2 library: F32 1.9e-5,
// Q8_0 and Q4_K_M 4.5e-8 (one float32 ulp); the quantized tolerances leave
// room, as the logits' do, for CPUs where ggml's kernels round differently.
var embedTolerance = map[string]float64{"f32": 2e-4, "q8_0": 2e-3, "q4_k_m": 2e-3}

// TestEmbeddingMatchesLlamaCpp compares the engine's mean-pooled final-norm
// hidden states (Seq.Pool) with llama.cpp's LLAMA_POOLING_TYPE_MEAN
// embedding of the same tokens, both normalized, on the seeded model of
// TestMatchesLlamaCpp as F32 and quantized by llama.cpp. The engine runs
// the prompt once in one batch (as llama.cpp does) and once in chunks of
// 16 tokens, as its scheduler feeds long inputs.
func TestEmbeddingMatchesLlamaCpp(t *testing.T) {
	dir := t.TempDir()
	base := synthModel(t, dir, "llama-spm", synth.Small, 42)
	text := "The quick brown fox jumps over the lazy dog, and then it runs far away into the forest where nobody can find it again."
	for _, ftype := range []string{"f32", "q8_0", "q4_k_m"} {
		t.Run(ftype, func(t *testing.T) {
			path := base
			if ftype != "f32" {
				path = filepath.Join(dir, "small-"+ftype+".gguf")
				llamaref.Quantize(t, base, path, ftype)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tok, err := tokenizer.New(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := model.Load(f.File)
			if err != nil {
				t.Fatal(err)
			}
			toks := tok.Encode(text, true, false)
			want := llamaref.Embed(t, path, toks)
			if len(want) != m.Embd {
				t.Fatalf("llama.cpp gave %d values, the model is %d wide", len(want), m.Embd)
			}
			unit(want)
			ws := m.NewWorkspace(2)
			for _, chunk := range []int{len(toks), 16} {
				pool := make([]float32, m.Embd)
				c := m.NewCache(len(toks))
				for i := 0; i < len(toks); i += chunk {
					if err := m.Step(ws, []model.Seq{{Cache: c, Tokens: toks[i:min(i+chunk, len(toks))], Pool: pool}}); err != nil {
						t.Fatal(err)
					}
				}
				unit(pool)
				var diff float64
				for i := range pool {
					diff = math.Max(diff, math.Abs(float64(pool[i]-want[i])))
				}
				t.Logf("%d tokens in chunks of %d: max |Δ| of the normalized embedding %.3g (tolerance %g)", len(toks), chunk, diff, embedTolerance[ftype])
				if diff > embedTolerance[ftype] {
					t.Errorf("chunks of %d: embedding differs from llama.cpp's by up to %.3g (tolerance %g)", chunk, diff, embedTolerance[ftype])
				}
			}
		})
	}
}

// unit scales v to unit L2 norm (a no-op on the mean's 1/n).
func unit(v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	s := 1 / math.Sqrt(ss)
	for i := range v {
		v[i] = float32(float64(v[i]) * s)
	}
}
