package demo

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/quant"
)

// Name is the model's general.name and the name `llmctl serve` gives it.
const Name = "demo-kjv-ngram"

func f32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func f16Bytes(x []float32) []byte {
	b := make([]byte, 2*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint16(b[2*i:], quant.F32ToF16(v))
	}
	return b
}

func q8Bytes(x []float32) []byte {
	b := make([]byte, len(x)/quant.QK8_0*quant.BlockQ8_0)
	quant.QuantizeQ8_0(b, x)
	return b
}

// queryKey returns the fixed attn_q and attn_k matrices (rows × cols =
// Embd × Embd): see the comment on gapLogits.
func (n *net) queryKey() (q, k []float32) {
	d, hd := n.cfg.Embd, n.cfg.headDim()
	q, k = make([]float32, d*d), make([]float32, d*d)
	for h := range n.cfg.Heads - 1 {
		off := float64(h + 1)
		for i, th := range n.thetas {
			r := h*hd + 2*i
			q[r*d] = float32(n.amp * math.Cos(off*th))
			q[(r+1)*d] = float32(-n.amp * math.Sin(off*th))
			k[r*d] = 1
		}
	}
	return q, k
}

func (m *Model) write(w io.Writer) (int64, error) {
	n, c := m.net, m.net.cfg
	var gw gguf.Writer
	gw.Set("general.architecture", "llama")
	gw.Set("general.name", Name)
	gw.Set("general.description", fmt.Sprintf("llmctl demo model: a one-layer llama trained on the King James Bible "+
		"(Debian bible-kjv-text) by pkg/serve/engine/demo; its attention is set, not trained "+
		"(heads look 1..%d tokens back and average the context), see docs/engine.md", c.Heads-1))
	gw.Set("general.license", "public-domain")
	gw.Set("general.file_type", uint32(1))
	gw.Set("llama.context_length", uint32(c.Context))
	gw.Set("llama.embedding_length", uint32(c.Embd))
	gw.Set("llama.block_count", uint32(1))
	gw.Set("llama.feed_forward_length", uint32(c.FF))
	gw.Set("llama.attention.head_count", uint32(c.Heads))
	gw.Set("llama.attention.head_count_kv", uint32(c.Heads))
	gw.Set("llama.attention.layer_norm_rms_epsilon", float32(eps))
	gw.Set("llama.rope.freq_base", c.RopeBase)
	gw.Set("llama.rope.dimension_count", uint32(c.headDim()))
	gw.Set("llama.vocab_size", uint32(c.Vocab))
	m.Vocab.setMeta(&gw)
	ones := make([]float32, c.Embd)
	for i := range ones {
		ones[i] = 1
	}
	q, k := n.queryKey()
	dims := func(p *param) []uint64 { return []uint64{uint64(p.cols), uint64(p.rows)} }
	sq := []uint64{uint64(c.Embd), uint64(c.Embd)}
	for _, t := range []struct {
		name string
		typ  gguf.GGMLType
		dims []uint64
		data []byte
	}{
		// token_embd stays F16: the first dimension of every row feeds the
		// fixed attention scores, whose margin Q8_0's rounding would eat into.
		{"token_embd.weight", gguf.F16, dims(n.embed), f16Bytes(n.embed.w)},
		{"blk.0.attn_norm.weight", gguf.F32, []uint64{uint64(c.Embd)}, f32Bytes(ones)},
		{"blk.0.attn_q.weight", gguf.F32, sq, f32Bytes(q)},
		{"blk.0.attn_k.weight", gguf.F32, sq, f32Bytes(k)},
		{"blk.0.attn_v.weight", gguf.F16, dims(n.wv), f16Bytes(n.wv.w)},
		{"blk.0.attn_output.weight", gguf.F16, dims(n.wo), f16Bytes(n.wo.w)},
		{"blk.0.ffn_norm.weight", gguf.F32, []uint64{uint64(c.Embd)}, f32Bytes(ones)},
		{"blk.0.ffn_gate.weight", gguf.F16, dims(n.gate), f16Bytes(n.gate.w)},
		{"blk.0.ffn_up.weight", gguf.F16, dims(n.up), f16Bytes(n.up.w)},
		{"blk.0.ffn_down.weight", gguf.F16, dims(n.down), f16Bytes(n.down.w)},
		{"output_norm.weight", gguf.F32, []uint64{uint64(c.Embd)}, f32Bytes(ones)},
		{"output.weight", gguf.Q8_0, dims(n.out), q8Bytes(n.out.w)},
	} {
		if err := gw.AddTensor(t.name, t.typ, t.dims, t.data); err != nil {
			return 0, fmt.Errorf("demo: %w", err)
		}
	}
	return gw.WriteTo(w)
}
