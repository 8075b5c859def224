package model

import (
	"fmt"
	"math"

	"github.com/llmctl/llmctl/pkg/serve/engine/quant"
)

// Seq is one sequence's share of a batched step: Tokens are appended to
// Cache at its next positions. If Logits is non-nil (len Vocab) it receives
// the logits after the last token. If Pool is non-nil (len Embd), the
// final-norm hidden state of every one of Tokens (the output matrix's input)
// is added to it: summed over a sequence's steps and divided by its length,
// that is llama.cpp's mean-pooled embedding.
type Seq struct {
	Cache  *Cache
	Tokens []int32
	Logits []float32
	Pool   []float32
}

// Workspace holds the scratch buffers of Step; one per concurrent caller.
// They are kept from step to step (sized for the largest step so far), so
// a step allocates little and the garbage collector has little to do.
type Workspace struct {
	p       pool
	buf     []float32 // activation rows, carved by rows
	off     int
	in, hin []acts // with their encodings' buffers
}

// NewWorkspace returns scratch space that computes on threads goroutines.
func (m *Model) NewWorkspace(threads int) *Workspace {
	return &Workspace{p: pool{threads: max(threads, 1)}}
}

// reserve makes room for floats values of rows and the acts of T tokens.
// Every value Step reads from these buffers it has written first in the
// same step, so they are not cleared.
func (ws *Workspace) reserve(floats, T int) {
	if len(ws.buf) < floats {
		ws.buf = make([]float32, floats)
	}
	ws.off = 0
	if len(ws.in) < T {
		ws.in, ws.hin = make([]acts, T), make([]acts, T)
	}
}

// rows carves n rows of width values out of the workspace buffer.
func (ws *Workspace) rows(n, width int) [][]float32 {
	buf := ws.buf[ws.off : ws.off+n*width]
	ws.off += n * width
	out := make([][]float32, n)
	for i := range out {
		out[i] = buf[i*width : (i+1)*width : (i+1)*width]
	}
	return out
}

// Step runs every sequence's tokens through the model in one batch.
func (m *Model) Step(ws *Workspace, seqs []Seq) error {
	var T int
	for i, s := range seqs {
		if len(s.Tokens) == 0 {
			return fmt.Errorf("model: sequence %d has no tokens", i)
		}
		if s.Cache.n+len(s.Tokens) > s.Cache.size {
			return fmt.Errorf("model: sequence %d needs %d positions, the context holds %d", i, s.Cache.n+len(s.Tokens), s.Cache.size)
		}
		s.Cache.reserve(s.Cache.n + len(s.Tokens))
		if s.Logits != nil && len(s.Logits) != m.Vocab {
			return fmt.Errorf("model: logits buffer of %d for a vocabulary of %d", len(s.Logits), m.Vocab)
		}
		if s.Pool != nil && len(s.Pool) != m.Embd {
			return fmt.Errorf("model: pooling buffer of %d for an embedding of %d", len(s.Pool), m.Embd)
		}
		for _, t := range s.Tokens {
			if t < 0 || int(t) >= m.Vocab {
				return fmt.Errorf("model: token %d outside the vocabulary of %d", t, m.Vocab)
			}
		}
		T += len(s.Tokens)
	}
	p := ws.p
	kvd := m.KVHeads * m.HeadDim
	ws.reserve(T*(5*m.Embd+2*kvd+2*m.FF+m.RopeDims)+m.FF, T)
	x, xn := ws.rows(T, m.Embd), ws.rows(T, m.Embd)
	q, att, o := ws.rows(T, m.Embd), ws.rows(T, m.Embd), ws.rows(T, m.Embd)
	k, v := ws.rows(T, kvd), ws.rows(T, kvd)
	g, u := ws.rows(T, m.FF), ws.rows(T, m.FF)
	ex := ws.rows(1, m.FF)[0]
	in, hin := ws.in[:T], ws.hin[:T]
	pos := make([]int, T)
	ropeCS := ws.rows(T, m.RopeDims)
	seqOf := make([]int, T)
	t := 0
	for i, s := range seqs {
		for j, tok := range s.Tokens {
			in[t].tile = j < len(s.Tokens)-len(s.Tokens)%4
			hin[t].tile = in[t].tile
			quant.DequantRow(uint32(m.Embed.Type), m.Embed.Row(int(tok)), x[t])
			pos[t] = s.Cache.n + j
			ropeTable(ropeCS[t], pos[t], m.RopeDims, m.RopeBase)
			seqOf[t] = i
			t++
		}
	}
	group := m.Heads / m.KVHeads
	scale := float32(1 / math.Sqrt(float64(m.HeadDim)))
	for li := range m.Blocks {
		l := &m.Blocks[li]
		for t := range T {
			rmsNorm(xn[t], x[t], l.AttnNorm, m.Eps)
			in[t].reset(xn[t])
		}
		p.matmul(&l.Q, in, q)
		p.matmul(&l.K, in, k)
		p.matmul(&l.V, in, v)
		for t := range T {
			addBias(q[t], l.QB)
			addBias(k[t], l.KB)
			addBias(v[t], l.VB)
			for h := range m.Heads {
				rope(q[t][h*m.HeadDim:(h+1)*m.HeadDim], ropeCS[t], m.RopeDims, m.RopeNeox)
			}
			for h := range m.KVHeads {
				rope(k[t][h*m.HeadDim:(h+1)*m.HeadDim], ropeCS[t], m.RopeDims, m.RopeNeox)
			}
			c := seqs[seqOf[t]].Cache
			kc := c.k[li][pos[t]*kvd : (pos[t]+1)*kvd]
			vc := c.v[li][pos[t]*kvd : (pos[t]+1)*kvd]
			quant.F32ToF16s(kc, k[t])
			quant.F32ToF16s(vc, v[t])
		}
		p.run(T*m.Heads, func(lo, hi int) {
			var q16 []float32
			var probs []float32
			mixAcc := make([]float32, 32*m.HeadDim)
			for th := lo; th < hi; th++ {
				t, h := th/m.Heads, th%m.Heads
				c := seqs[seqOf[t]].Cache
				kh := (h / group) * m.HeadDim
				if q16 == nil {
					q16 = make([]float32, m.HeadDim)
				}
				quant.ScaleRoundF16(q16, q[t][h*m.HeadDim:(h+1)*m.HeadDim], 1)
				n := pos[t] + 1
				if cap(probs) < n {
					probs = make([]float32, n, c.size)
				}
				probs = probs[:n]
				// llama.cpp multiplies a batch of two or more tokens with
				// tinyBLAS, a single token with ggml's dot products.
				tile := len(seqs[seqOf[t]].Tokens) >= 2 && m.HeadDim%8 == 0
				if tile {
					quant.ScoresF16Tile(probs, c.k[li][kh:], kvd, q16)
				} else {
					quant.ScoresF16Vec(probs, c.k[li][kh:], kvd, q16)
				}
				mx := quant.ScaleMax(probs, scale)
				// ggml_vec_soft_max_f32: eight exponentials at a time,
				// summed in float32 across the lanes, then added in float64
				// (llama.cpp's cache length is a multiple of 8; the zeros
				// of its masked positions change no sum).
				quant.ExpSub(probs, probs, mx, false)
				inv := float32(1 / quant.SoftmaxSum(probs))
				quant.ScaleRoundF16(probs, probs, inv)
				out := att[t][h*m.HeadDim : (h+1)*m.HeadDim]
				if tile {
					quant.MixF16Tile(out, c.v[li][kh:], kvd, probs, mixAcc)
				} else {
					quant.MixF16Vec(out, c.v[li][kh:], kvd, probs, mixAcc)
				}
			}
		})
		for t := range T {
			in[t].reset(att[t])
		}
		p.matmul(&l.O, in, o)
		for t := range T {
			for i, d := range o[t] {
				x[t][i] += d
			}
			rmsNorm(xn[t], x[t], l.FFNNorm, m.Eps)
			in[t].reset(xn[t])
		}
		p.matmul(&l.Gate, in, g)
		p.matmul(&l.Up, in, u)
		for t := range T {
			// ggml_vec_swiglu_f32: ggml_v_silu(x)·up eight at a time,
			// ggml_silu_f32 (libm) for the n%8 left over.
			vec := len(g[t]) - len(g[t])%8
			quant.ExpSub(ex[:vec], g[t][:vec], 0, true)
			quant.SwiGLUDiv(g[t][:vec], ex[:vec], u[t][:vec])
			for i := vec; i < len(g[t]); i++ {
				g[t][i] = siluLibm(g[t][i]) * u[t][i]
			}
			hin[t].reset(g[t])
		}
		p.matmul(&l.Down, hin, o)
		for t := range T {
			for i, d := range o[t] {
				x[t][i] += d
			}
		}
	}
	t = 0
	var outIn []acts
	var outRows [][]float32
	for _, s := range seqs {
		first := t
		t += len(s.Tokens)
		s.Cache.n += len(s.Tokens)
		if s.Pool != nil {
			for u := first; u < t; u++ {
				rmsNorm(xn[u], x[u], m.OutNorm, m.Eps)
				for i, v := range xn[u] {
					s.Pool[i] += v
				}
			}
		}
		if s.Logits == nil {
			continue
		}
		rmsNorm(xn[t-1], x[t-1], m.OutNorm, m.Eps)
		var a acts
		a.reset(xn[t-1])
		outIn = append(outIn, a)
		outRows = append(outRows, s.Logits)
	}
	if len(outIn) > 0 {
		p.matmul(&m.Output, outIn, outRows)
	}
	return nil
}

func addBias(x, b []float32) {
	for i := range b {
		x[i] += b[i]
	}
}
