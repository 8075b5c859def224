// Package synth writes seeded random-weight llama models as GGUF files.
// No trained weights can be downloaded where the engine is tested, so the
// tests compare the engine with llama.cpp on these: same file, same tokens.
// Weights are drawn N(0, 1/fan_in) so that attention scores and residual
// updates have unit scale (tiny weights would hide attention bugs), and the
// vocabulary is copied from a real tokenizer file.
package synth

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
)

// Shape is a llama model's hyperparameters.
type Shape struct {
	Name string
	// Arch is "llama" (default) or "qwen2" (NeoX RoPE, q/k/v biases).
	Arch      string
	Embd      int
	Layers    int
	Heads     int
	KVHeads   int
	FF        int
	Context   int
	TiedEmbed bool // no output.weight: the output projection reuses token_embd
	RopeBase  float32
}

// Small is a ~20M-parameter shape (GQA 2:1, untied), used by tests.
var Small = Shape{Name: "synth-small-random", Embd: 256, Layers: 4, Heads: 8, KVHeads: 4, FF: 768, Context: 512, RopeBase: 10000}

// Qwen2Tiny is a small qwen2-style shape (NeoX RoPE, attention biases, GQA,
// tied embeddings) for use with a qwen2 BPE vocabulary.
var Qwen2Tiny = Shape{Name: "synth-qwen2-tiny-random", Arch: "qwen2", Embd: 128, Layers: 2, Heads: 4, KVHeads: 2, FF: 384, Context: 512, TiedEmbed: true, RopeBase: 1000000}

// Base is a ~110M-parameter shape (tied embeddings), used by benchmarks.
var Base = Shape{Name: "synth-110m-random", Embd: 768, Layers: 12, Heads: 12, KVHeads: 12, FF: 2048, Context: 1024, TiedEmbed: true, RopeBase: 10000}

// Write generates the model with the vocabulary of vocab (a GGUF file with
// tokenizer.* metadata, e.g. llama.cpp's ggml-vocab-llama-spm.gguf) and
// writes it as an F32 GGUF file to w.
func Write(w io.Writer, s Shape, vocab *gguf.File, seed uint64) error {
	tokens, ok := vocab.Strings("tokenizer.ggml.tokens")
	if !ok {
		return fmt.Errorf("synth: vocabulary file has no tokenizer.ggml.tokens")
	}
	if s.Heads == 0 || s.Embd%s.Heads != 0 || s.KVHeads == 0 || s.Heads%s.KVHeads != 0 {
		return fmt.Errorf("synth: bad head counts in %+v", s)
	}
	nv := len(tokens)
	hd := s.Embd / s.Heads
	arch := s.Arch
	if arch == "" {
		arch = "llama"
	}
	if arch != "llama" && arch != "qwen2" {
		return fmt.Errorf("synth: architecture %q (want llama or qwen2)", arch)
	}
	var gw gguf.Writer
	gw.Set("general.architecture", arch)
	gw.Set("general.name", s.Name)
	gw.Set("general.file_type", uint32(0))
	gw.Set(arch+".context_length", uint32(s.Context))
	gw.Set(arch+".embedding_length", uint32(s.Embd))
	gw.Set(arch+".block_count", uint32(s.Layers))
	gw.Set(arch+".feed_forward_length", uint32(s.FF))
	gw.Set(arch+".attention.head_count", uint32(s.Heads))
	gw.Set(arch+".attention.head_count_kv", uint32(s.KVHeads))
	gw.Set(arch+".attention.layer_norm_rms_epsilon", float32(1e-5))
	gw.Set(arch+".rope.freq_base", s.RopeBase)
	if arch == "llama" {
		gw.Set("llama.rope.dimension_count", uint32(hd))
		gw.Set("llama.vocab_size", uint32(nv))
	}
	for _, kv := range vocab.KV {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			gw.CopyKV(kv)
		}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	// normal draws rows x cols weights ~ N(0, std^2) as little-endian F32.
	normal := func(rows, cols int, std float64) []byte {
		b := make([]byte, 4*rows*cols)
		for i := 0; i < rows*cols; i++ {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(rng.NormFloat64()*std)))
		}
		return b
	}
	// norm weights near one, so the multiply is exercised.
	norm := func(n int) []byte {
		b := make([]byte, 4*n)
		for i := range n {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(1+0.1*rng.NormFloat64())))
		}
		return b
	}
	add := func(name string, data []byte, dims ...int) error {
		d := make([]uint64, len(dims))
		for i, v := range dims {
			d[i] = uint64(v)
		}
		return gw.AddTensor(name, gguf.F32, d, data)
	}
	// biases only exist in qwen2 files
	bias := func(name string, n int) error {
		if arch != "qwen2" {
			return nil
		}
		return add(name, normal(1, n, 0.5), n)
	}
	lin := func(name string, in, out int) error {
		return add(name, normal(out, in, 1/math.Sqrt(float64(in))), in, out)
	}
	// A tied table doubles as the output projection, so it gets that scale.
	embStd := 1.0
	if s.TiedEmbed {
		embStd = 1 / math.Sqrt(float64(s.Embd))
	}
	if err := add("token_embd.weight", normal(nv, s.Embd, embStd), s.Embd, nv); err != nil {
		return err
	}
	for l := range s.Layers {
		p := fmt.Sprintf("blk.%d.", l)
		for _, err := range []error{
			add(p+"attn_norm.weight", norm(s.Embd), s.Embd),
			lin(p+"attn_q.weight", s.Embd, s.Embd),
			lin(p+"attn_k.weight", s.Embd, s.KVHeads*hd),
			lin(p+"attn_v.weight", s.Embd, s.KVHeads*hd),
			lin(p+"attn_output.weight", s.Embd, s.Embd),
			bias(p+"attn_q.bias", s.Embd),
			bias(p+"attn_k.bias", s.KVHeads*hd),
			bias(p+"attn_v.bias", s.KVHeads*hd),
			add(p+"ffn_norm.weight", norm(s.Embd), s.Embd),
			lin(p+"ffn_gate.weight", s.Embd, s.FF),
			lin(p+"ffn_up.weight", s.Embd, s.FF),
			lin(p+"ffn_down.weight", s.FF, s.Embd),
		} {
			if err != nil {
				return err
			}
		}
	}
	if err := add("output_norm.weight", norm(s.Embd), s.Embd); err != nil {
		return err
	}
	if !s.TiedEmbed {
		if err := lin("output.weight", s.Embd, nv); err != nil {
			return err
		}
	}
	_, err := gw.WriteTo(w)
	return err
}
