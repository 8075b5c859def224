// Package model is the llama-family transformer forward pass: weights
// loaded from a GGUF file (read into memory by gguf.Open; Q4_0 and Q4_K
// matrices are copied once, row-interleaved for the packed kernels, after
// which their loaded bytes can be given back: Model.Repacked), a
// per-sequence KV cache, and a batched step that runs any mix of prompt chunks and single
// decode tokens from many sequences through the weights once.
//
// The arithmetic follows llama.cpp's CPU graph so that greedy tokens agree:
// activations are quantized per weight type exactly as ggml does before each
// matrix product, the KV cache is F16, and attention is a plain F16 product
// plus softmax (llama.cpp with flash attention off).
package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/quant"
)

// ErrModel is wrapped by errors about unusable model files.
var ErrModel = errors.New("model: unsupported or inconsistent model")

// Config is the model's hyperparameters.
type Config struct {
	Arch     string
	Name     string
	Embd     int
	Layers   int
	Heads    int
	KVHeads  int
	HeadDim  int
	FF       int
	Context  int
	Vocab    int
	Eps      float32
	RopeBase float32
	RopeDims int
	// RopeNeox rotates pairs (i, i+d/2) instead of adjacent pairs (2i, 2i+1).
	RopeNeox bool
}

// Tensor is a 2-D weight: Rows rows of Cols elements in one encoding.
type Tensor struct {
	Name     string
	Type     gguf.GGMLType
	Rows     int
	Cols     int
	Data     []byte
	rowBytes int
	// packed is Data row-interleaved for the packed kernels (Q4_0 and Q4_K
	// with a multiple of 8 rows, where they run in assembly), or nil.
	packed []byte
}

// pack prepares t for the packed kernels where they apply. It copies the
// weights once at load time, as llama.cpp's repacking does, and drops its
// reference to the file's bytes, which nothing reads any more (Repacked).
func (t *Tensor) pack() {
	if t.Rows%8 != 0 {
		return
	}
	switch {
	case t.Type == gguf.Q4_0 && t.Cols%quant.QK4_0 == 0 && quant.HasPackedQ4_0():
		t.packed = quant.PackQ4_0x8(t.Data, t.Rows, t.Cols)
	case t.Type == gguf.Q4_K && t.Cols%quant.QK_K == 0 && quant.HasPackedQ4_K():
		t.packed = quant.PackQ4_Kx8(t.Data, t.Rows, t.Cols)
	default:
		return
	}
	t.Data = nil
}

// Repacked names the file's tensors the model no longer reads: each was
// copied into the packed layout and no unpacked use of it is left (a tied
// output packs token_embd, whose rows are still read for the embedding).
// Their bytes in the loaded file can be given back (gguf.Mapped.Release).
func (m *Model) Repacked() []string {
	all := []*Tensor{&m.Embed, &m.Output}
	for i := range m.Blocks {
		l := &m.Blocks[i]
		all = append(all, &l.Q, &l.K, &l.V, &l.O, &l.Gate, &l.Up, &l.Down)
	}
	read := map[string]bool{}
	for _, t := range all {
		if t.Data != nil {
			read[t.Name] = true
		}
	}
	var names []string
	for _, t := range all {
		if t.packed != nil && !read[t.Name] {
			names = append(names, t.Name)
		}
	}
	return names
}

// Row returns the encoded bytes of row r.
func (t *Tensor) Row(r int) []byte { return t.Data[r*t.rowBytes : (r+1)*t.rowBytes] }

// Layer holds one transformer block's weights.
type Layer struct {
	AttnNorm, FFNNorm []float32
	Q, K, V, O        Tensor
	QB, KB, VB        []float32 // optional biases (qwen2)
	Gate, Up, Down    Tensor
}

// Model is an immutable loaded model; it is safe for concurrent use, with
// one Cache per sequence and one Workspace per concurrent Forward call.
type Model struct {
	Config
	Embed   Tensor
	Blocks  []Layer
	OutNorm []float32
	Output  Tensor
}

var supported = map[gguf.GGMLType]bool{gguf.F32: true, gguf.F16: true, gguf.Q8_0: true, gguf.Q4_0: true, gguf.Q4_K: true, gguf.Q6_K: true}

// Load builds a Model over the tensors of f (which must outlive it).
func Load(f *gguf.File) (*Model, error) {
	arch, _ := f.String("general.architecture")
	m := &Model{}
	m.Arch = arch
	m.Name, _ = f.String("general.name")
	switch arch {
	case "llama", "mistral":
	case "qwen2":
		m.RopeNeox = true
	default:
		return nil, fmt.Errorf("%w: architecture %q (supported: llama, mistral, qwen2)", ErrModel, arch)
	}
	u := func(key string, def int) (int, error) {
		v, ok := f.Uint(arch + "." + key)
		if !ok {
			if def >= 0 {
				return def, nil
			}
			return 0, fmt.Errorf("%w: metadata %s.%s missing", ErrModel, arch, key)
		}
		if v == 0 || v > 1<<24 {
			return 0, fmt.Errorf("%w: metadata %s.%s = %d out of range", ErrModel, arch, key, v)
		}
		return int(v), nil
	}
	var err error
	if m.Embd, err = u("embedding_length", -1); err != nil {
		return nil, err
	}
	if m.Layers, err = u("block_count", -1); err != nil {
		return nil, err
	}
	// Each block has at least nine tensors: refuse a count the file cannot
	// back before allocating for it.
	if m.Layers*9 > len(f.Tensors) {
		return nil, fmt.Errorf("%w: %d blocks declared but the file has only %d tensors", ErrModel, m.Layers, len(f.Tensors))
	}
	if m.Heads, err = u("attention.head_count", -1); err != nil {
		return nil, err
	}
	if m.KVHeads, err = u("attention.head_count_kv", m.Heads); err != nil {
		return nil, err
	}
	if m.FF, err = u("feed_forward_length", -1); err != nil {
		return nil, err
	}
	if m.Context, err = u("context_length", 2048); err != nil {
		return nil, err
	}
	if m.Embd%m.Heads != 0 || m.Heads%m.KVHeads != 0 {
		return nil, fmt.Errorf("%w: %d heads, %d kv heads, embedding %d", ErrModel, m.Heads, m.KVHeads, m.Embd)
	}
	m.HeadDim = m.Embd / m.Heads
	if m.RopeDims, err = u("rope.dimension_count", m.HeadDim); err != nil {
		return nil, err
	}
	if m.RopeDims > m.HeadDim || m.RopeDims%2 != 0 {
		return nil, fmt.Errorf("%w: rope dimension %d for head dimension %d", ErrModel, m.RopeDims, m.HeadDim)
	}
	m.Eps = 1e-5
	if v, ok := f.Float(arch + ".attention.layer_norm_rms_epsilon"); ok {
		m.Eps = float32(v)
	}
	m.RopeBase = 10000
	if v, ok := f.Float(arch + ".rope.freq_base"); ok {
		m.RopeBase = float32(v)
	}
	if s, ok := f.String(arch + ".rope.scaling.type"); ok && s != "none" {
		return nil, fmt.Errorf("%w: rope scaling %q", ErrModel, s)
	}

	vec := func(name string, n int, optional bool) ([]float32, error) {
		ti, ok := f.Tensor(name)
		if !ok {
			if optional {
				return nil, nil
			}
			return nil, fmt.Errorf("%w: tensor %s missing", ErrModel, name)
		}
		if ti.Elements() != uint64(n) || (ti.Type != gguf.F32 && ti.Type != gguf.F16) {
			return nil, fmt.Errorf("%w: tensor %s is %s %v, want F32[%d]", ErrModel, name, ti.Type, ti.Dims, n)
		}
		out := make([]float32, n)
		quant.DequantRow(uint32(ti.Type), f.Data(ti), out)
		return out, nil
	}
	mat := func(name string, cols, rows int) (Tensor, error) {
		ti, ok := f.Tensor(name)
		if !ok {
			return Tensor{}, fmt.Errorf("%w: tensor %s missing", ErrModel, name)
		}
		if len(ti.Dims) != 2 || ti.Dims[0] != uint64(cols) || (rows > 0 && ti.Dims[1] != uint64(rows)) {
			return Tensor{}, fmt.Errorf("%w: tensor %s has shape %v, want [%d %d]", ErrModel, name, ti.Dims, cols, rows)
		}
		if !supported[ti.Type] {
			return Tensor{}, fmt.Errorf("%w: tensor %s has type %s (supported: F32, F16, Q8_0, Q4_0, Q4_K, Q6_K)", ErrModel, name, ti.Type)
		}
		return Tensor{Name: name, Type: ti.Type, Rows: int(ti.Dims[1]), Cols: cols, Data: f.Data(ti), rowBytes: ti.Type.RowBytes(cols)}, nil
	}
	if m.Embed, err = mat("token_embd.weight", m.Embd, 0); err != nil {
		return nil, err
	}
	m.Vocab = m.Embed.Rows
	kvd := m.KVHeads * m.HeadDim
	m.Blocks = make([]Layer, m.Layers)
	for i := range m.Blocks {
		l := &m.Blocks[i]
		p := fmt.Sprintf("blk.%d.", i)
		for _, step := range []func() error{
			func() (e error) { l.AttnNorm, e = vec(p+"attn_norm.weight", m.Embd, false); return },
			func() (e error) { l.FFNNorm, e = vec(p+"ffn_norm.weight", m.Embd, false); return },
			func() (e error) { l.Q, e = mat(p+"attn_q.weight", m.Embd, m.Embd); return },
			func() (e error) { l.K, e = mat(p+"attn_k.weight", m.Embd, kvd); return },
			func() (e error) { l.V, e = mat(p+"attn_v.weight", m.Embd, kvd); return },
			func() (e error) { l.O, e = mat(p+"attn_output.weight", m.Embd, m.Embd); return },
			func() (e error) { l.QB, e = vec(p+"attn_q.bias", m.Embd, true); return },
			func() (e error) { l.KB, e = vec(p+"attn_k.bias", kvd, true); return },
			func() (e error) { l.VB, e = vec(p+"attn_v.bias", kvd, true); return },
			func() (e error) { l.Gate, e = mat(p+"ffn_gate.weight", m.Embd, m.FF); return },
			func() (e error) { l.Up, e = mat(p+"ffn_up.weight", m.Embd, m.FF); return },
			func() (e error) { l.Down, e = mat(p+"ffn_down.weight", m.FF, m.Embd); return },
		} {
			if err := step(); err != nil {
				return nil, err
			}
		}
	}
	if m.OutNorm, err = vec("output_norm.weight", m.Embd, false); err != nil {
		return nil, err
	}
	if _, ok := f.Tensor("output.weight"); ok {
		if m.Output, err = mat("output.weight", m.Embd, m.Vocab); err != nil {
			return nil, err
		}
	} else {
		m.Output = m.Embed // tied embeddings
	}
	for i := range m.Blocks {
		l := &m.Blocks[i]
		for _, t := range []*Tensor{&l.Q, &l.K, &l.V, &l.O, &l.Gate, &l.Up, &l.Down} {
			t.pack()
		}
	}
	m.Output.pack()
	return m, nil
}

// Cache is one sequence's KV cache: F16 keys and values per layer.
type Cache struct {
	k, v [][]uint16
	n    int
	size int
	kvd  int
}

// NewCache returns a cache for up to size positions. Memory is taken as
// positions are filled, so a short request does not pay for a long context.
func (m *Model) NewCache(size int) *Cache {
	c := &Cache{size: size, kvd: m.KVHeads * m.HeadDim}
	c.k = make([][]uint16, m.Layers)
	c.v = make([][]uint16, m.Layers)
	return c
}

// reserve makes room for n positions.
func (c *Cache) reserve(n int) {
	if len(c.k) == 0 || len(c.k[0]) >= n*c.kvd {
		return
	}
	grow := min(max(n, 2*len(c.k[0])/c.kvd, 64), c.size)
	for i := range c.k {
		k := make([]uint16, grow*c.kvd)
		copy(k, c.k[i])
		c.k[i] = k
		v := make([]uint16, grow*c.kvd)
		copy(v, c.v[i])
		c.v[i] = v
	}
}

// Len is the number of positions filled.
func (c *Cache) Len() int { return c.n }

// Cap is the number of positions the cache holds.
func (c *Cache) Cap() int { return c.size }

// Truncate forgets positions from n on (to reuse a common prompt prefix).
func (c *Cache) Truncate(n int) {
	if n < c.n {
		c.n = max(n, 0)
	}
}

func rmsNorm(dst, x, w []float32, eps float32) {
	var sum float64
	for _, v := range x {
		sum += float64(v * v)
	}
	mean := float32(sum / float64(len(x)))
	scale := 1 / float32(math.Sqrt(float64(mean+eps)))
	for i, v := range x {
		dst[i] = v * scale * w[i]
	}
}

// ropeTable returns cos and sin of every rotated pair for position pos, as
// ggml_rope_ext computes them with no scaling: theta advances by repeated
// float32 multiplication. Computed once per token, shared by all heads and
// layers.
func ropeTable(cs []float32, pos int, dims int, base float32) {
	thetaScale := float32(math.Pow(float64(base), -2.0/float64(dims)))
	theta := float32(pos)
	for i := 0; i < dims/2; i++ {
		cs[2*i] = float32(math.Cos(float64(theta)))
		cs[2*i+1] = float32(math.Sin(float64(theta)))
		theta *= thetaScale
	}
}

// rope rotates x (one head) in place with the table of ropeTable.
func rope(x []float32, cs []float32, dims int, neox bool) {
	if !neox {
		quant.RopePairs(x[:dims], cs[:dims])
		return
	}
	for i := 0; i < dims/2; i++ {
		c, s := cs[2*i], cs[2*i+1]
		a, b := 2*i, 2*i+1
		if neox {
			a, b = i, i+dims/2
		}
		x0, x1 := x[a], x[b]
		// llama.cpp's CPU library is compiled with FMA contraction, so its
		// rotation rounds one product fewer (x0·cos and x0·sin are the fused
		// ones, as its scalar loop does, checked bit for bit with llamaref
		// trace); the last bit decides later F16 and int8 roundings.
		x[a] = quant.FMA32(x0, c, -float32(x1*s))
		x[b] = quant.FMA32(x0, s, float32(x1*c))
	}
}

// siluLibm is ggml_silu_f32, which ggml uses for the n%8 elements its
// vector loop leaves (libm expf, here the correctly rounded value).
func siluLibm(x float32) float32 { return x / (1 + float32(math.Exp(float64(-x)))) }
