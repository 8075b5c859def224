package demo

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Config is the demo model's shape and training schedule.
type Config struct {
	Vocab    int     // tokens in the learned vocabulary
	Embd     int     // embedding width
	Heads    int     // attention heads: Heads-1 look 1..Heads-1 tokens back, the last averages
	FF       int     // feed-forward width
	Context  int     // context length written to the file (the offset heads are exact up to it)
	RopeBase float32 // RoPE frequency base
	SeqLen   int     // training sequence length (BOS + SeqLen-1 corpus tokens)
	Batch    int     // sequences per optimizer step
	Steps    int     // optimizer steps
	LR       float32 // peak Adam learning rate
	Seed     uint64
}

// DefaultConfig is the shipped demo model's configuration.
func DefaultConfig() Config {
	return Config{Vocab: 4096, Embd: 128, Heads: 8, FF: 384, Context: 1024, RopeBase: 10,
		SeqLen: 64, Batch: 16, Steps: 1100, LR: 3e-3, Seed: 1611}
}

func (c Config) headDim() int { return c.Embd / c.Heads }

func (c Config) validate() error {
	if c.Vocab <= 0 || c.Embd <= 0 || c.Heads < 2 || c.Embd%c.Heads != 0 || c.headDim()%2 != 0 ||
		c.FF <= 0 || c.Context < c.SeqLen || c.SeqLen < 2 || c.Batch <= 0 || c.Steps < 0 || c.LR <= 0 {
		return fmt.Errorf("demo: bad config %+v", c)
	}
	return nil
}

// eps is the RMS norm epsilon written to the file and used in training.
const eps = 1e-5

// param is a trained matrix (rows × cols, row-major as GGUF stores it) with
// its gradient and Adam moments.
type param struct {
	rows, cols int
	w, g, m, v []float32
}

func newParam(rows, cols int, std float64, rng *rand.Rand) *param {
	p := &param{rows: rows, cols: cols, w: make([]float32, rows*cols), g: make([]float32, rows*cols),
		m: make([]float32, rows*cols), v: make([]float32, rows*cols)}
	for i := range p.w {
		p.w[i] = float32(rng.NormFloat64() * std)
	}
	return p
}

func (p *param) row(r int) []float32  { return p.w[r*p.cols : (r+1)*p.cols] }
func (p *param) grow(r int) []float32 { return p.g[r*p.cols : (r+1)*p.cols] }

// net is the trained part of the model and the fixed attention pattern.
type net struct {
	cfg                 Config
	embed, wv, wo       *param // token_embd, attn_v, attn_output
	gate, up, down, out *param // ffn_gate, ffn_up, ffn_down, output
	amp                 float64
	thetas              []float64
	pattern             [][][]weight // [head][t] over training positions
	params              []*param
	step                int
	n00                 float64 // first dimension of every normalized embedding
}

func newNet(cfg Config) (*net, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5851f42d4c957f2d))
	d, hd := cfg.Embd, cfg.headDim()
	n := &net{cfg: cfg, thetas: ropeThetas(hd, cfg.RopeBase)}
	n.n00 = 1 / math.Sqrt(1+eps)
	for k := 1; k < cfg.Heads; k++ {
		a, ok := offsetAmplitude(n.thetas, k, cfg.Context, hd)
		if !ok {
			return nil, fmt.Errorf("demo: RoPE base %v cannot single out offset %d over %d positions", cfg.RopeBase, k, cfg.Context)
		}
		n.amp = max(n.amp, a)
	}
	for h := range cfg.Heads {
		k := h + 1
		if h == cfg.Heads-1 {
			k = 0
		}
		n.pattern = append(n.pattern, attnWeights(n.thetas, k, n.amp, hd, cfg.SeqLen, n.n00))
	}
	inv := func(fan int) float64 { return 1 / math.Sqrt(float64(fan)) }
	n.embed = newParam(cfg.Vocab, d, 1, rng)
	n.wv = newParam(d, d, inv(d), rng)
	n.wo = newParam(d, d, inv(d), rng)
	n.gate = newParam(cfg.FF, d, inv(d), rng)
	n.up = newParam(cfg.FF, d, inv(d), rng)
	n.down = newParam(d, cfg.FF, inv(cfg.FF), rng)
	n.out = newParam(cfg.Vocab, d, inv(d), rng)
	n.params = []*param{n.embed, n.wv, n.wo, n.gate, n.up, n.down, n.out}
	for r := range cfg.Vocab {
		project(n.embed.row(r))
	}
	return n, nil
}

// project puts an embedding row back on the constraint the fixed attention
// relies on: first dimension 1, RMS 1.
func project(e []float32) {
	e[0] = 1
	var ss float64
	for _, v := range e[1:] {
		ss += float64(v) * float64(v)
	}
	want := float64(len(e) - 1)
	if ss == 0 {
		return
	}
	s := float32(math.Sqrt(want / ss))
	for i := 1; i < len(e); i++ {
		e[i] *= s
	}
}

// rmsNorm sets y = x/rms(x) and returns 1/rms(x).
func rmsNorm(y, x []float32) float32 {
	var ss float64
	for _, v := range x {
		ss += float64(v * v)
	}
	r := float32(1 / math.Sqrt(ss/float64(len(x))+eps))
	for i, v := range x {
		y[i] = v * r
	}
	return r
}

// rmsBack adds to dx the gradient through y = x·r given dy.
func rmsBack(dx, x, dy []float32, r float32) {
	var xdy float32
	for i := range x {
		xdy += x[i] * dy[i]
	}
	c := r * r * r * xdy / float32(len(x))
	for i := range x {
		dx[i] += r*dy[i] - c*x[i]
	}
}

func silu(x float32) (s, sig float32) {
	sig = float32(1 / (1 + math.Exp(-float64(x))))
	return x * sig, sig
}

// work is one sequence's activations, reused across sequences.
type work struct {
	e, n0, v, att, x1, n1, g, u, m, x2, n2 [][]float32
	r0, r1, r2                             []float32
	logits                                 [][]float32
	d1, d2, dn, dff, dv, datt              [][]float32
}

func mat(n, w int) [][]float32 {
	buf := make([]float32, n*w)
	out := make([][]float32, n)
	for i := range out {
		out[i] = buf[i*w : (i+1)*w]
	}
	return out
}

func (n *net) newWork() *work {
	T, d, ff, v := n.cfg.SeqLen, n.cfg.Embd, n.cfg.FF, n.cfg.Vocab
	return &work{
		e: mat(T, d), n0: mat(T, d), v: mat(T, d), att: mat(T, d), x1: mat(T, d), n1: mat(T, d),
		g: mat(T, ff), u: mat(T, ff), m: mat(T, ff), x2: mat(T, d), n2: mat(T, d),
		r0: make([]float32, T), r1: make([]float32, T), r2: make([]float32, T),
		logits: mat(T, v),
		d1:     mat(T, d), d2: mat(T, d), dn: mat(T, d), dff: mat(T, ff), dv: mat(T, d), datt: mat(T, d),
	}
}

// forward runs tokens (len ≤ SeqLen) through the model, leaving the
// activations and, per position, the next-token probabilities in w.logits.
func (n *net) forward(w *work, tokens []int32) {
	T, hd := len(tokens), n.cfg.headDim()
	for t, tok := range tokens {
		copy(w.e[t], n.embed.row(int(tok)))
		w.r0[t] = rmsNorm(w.n0[t], w.e[t])
		matvec(w.v[t], n.wv.w, w.n0[t])
	}
	for t := range T {
		clear(w.att[t])
		for h := range n.cfg.Heads {
			dst := w.att[t][h*hd : (h+1)*hd]
			for _, p := range n.pattern[h][t] {
				axpy(dst, p.w, w.v[p.s][h*hd:(h+1)*hd])
			}
		}
		matvec(w.x1[t], n.wo.w, w.att[t])
		for i := range w.x1[t] {
			w.x1[t][i] += w.e[t][i]
		}
		w.r1[t] = rmsNorm(w.n1[t], w.x1[t])
		matvec(w.g[t], n.gate.w, w.n1[t])
		matvec(w.u[t], n.up.w, w.n1[t])
		for i, g := range w.g[t] {
			s, _ := silu(g)
			w.m[t][i] = s * w.u[t][i]
		}
		matvec(w.x2[t], n.down.w, w.m[t])
		for i := range w.x2[t] {
			w.x2[t][i] += w.x1[t][i]
		}
		w.r2[t] = rmsNorm(w.n2[t], w.x2[t])
	}
	// the output layer: each row of the matrix against every position
	for j := range n.cfg.Vocab {
		row := n.out.row(j)
		for t := range T {
			w.logits[t][j] = dot(row, w.n2[t])
		}
	}
	for t := range T {
		softmax(w.logits[t])
	}
}

func softmax(x []float32) {
	mx := x[0]
	for _, v := range x {
		mx = max(mx, v)
	}
	var sum float64
	for i, v := range x {
		e := float32(math.Exp(float64(v - mx)))
		x[i] = e
		sum += float64(e)
	}
	inv := float32(1 / sum)
	for i := range x {
		x[i] *= inv
	}
}

// logProb is log p for a probability of the forward pass.
func logProb(p float32) float64 { return math.Log(max(float64(p), 1e-30)) }

// skipBelow is the probability under which a token's share of the output
// layer's gradient is left out: it is too small to matter (at most
// Vocab·skipBelow of probability mass in all), and skipping it halves the
// training time once the predictions are confident.
const skipBelow = 1e-6

// backward adds the gradients of scale·(−Σ log p(target)) for the positions
// t < len(targets) of the last forward, and returns that sum of −log p.
func (n *net) backward(w *work, tokens, targets []int32, scale float32) float64 {
	T, hd := len(tokens), n.cfg.headDim()
	var nll float64
	// dlogits = scale·(p − onehot), in place; tiny ones become 0
	for t := range T {
		p := w.logits[t]
		if t >= len(targets) {
			clear(p)
			continue
		}
		nll -= logProb(p[targets[t]])
		for j, v := range p {
			if v < skipBelow {
				p[j] = 0
			} else {
				p[j] = scale * v
			}
		}
		p[targets[t]] -= scale
		clear(w.dn[t])
	}
	for j := range n.cfg.Vocab {
		row, grow := n.out.row(j), n.out.grow(j)
		for t := range len(targets) {
			if g := w.logits[t][j]; g != 0 {
				axpy(w.dn[t], g, row)
				axpy(grow, g, w.n2[t])
			}
		}
	}
	for t := range T {
		clear(w.d2[t])
		clear(w.dv[t])
	}
	for t := range len(targets) {
		// x2 = x1 + down·m ; n2 = norm(x2)
		rmsBack(w.d2[t], w.x2[t], w.dn[t], w.r2[t])
		clear(w.dff[t])
		backMatvec(w.dff[t], n.down.g, n.down.w, w.m[t], w.d2[t])
		dg, du := w.m[t], w.u[t] // reuse: m and u are not needed after this
		for i, g := range w.g[t] {
			s, sig := silu(g)
			dm := w.dff[t][i]
			dg[i], du[i] = dm*w.u[t][i]*sig*(1+g*(1-sig)), dm*s
		}
		clear(w.dn[t])
		backMatvec(w.dn[t], n.gate.g, n.gate.w, w.n1[t], dg)
		backMatvec(w.dn[t], n.up.g, n.up.w, w.n1[t], du)
		copy(w.d1[t], w.d2[t])
		rmsBack(w.d1[t], w.x1[t], w.dn[t], w.r1[t])
		// x1 = e + wo·att
		clear(w.datt[t])
		backMatvec(w.datt[t], n.wo.g, n.wo.w, w.att[t], w.d1[t])
		for h := range n.cfg.Heads {
			src := w.datt[t][h*hd : (h+1)*hd]
			for _, p := range n.pattern[h][t] {
				axpy(w.dv[p.s][h*hd:(h+1)*hd], p.w, src)
			}
		}
	}
	for t := range T {
		// v = wv·n0 ; n0 = norm(e); the residual passes d1 to e
		clear(w.dn[t])
		backMatvec(w.dn[t], n.wv.g, n.wv.w, w.n0[t], w.dv[t])
		de := w.d1[t]
		if t >= len(targets) {
			clear(de)
		}
		rmsBack(de, w.e[t], w.dn[t], w.r0[t])
		axpy(n.embed.grow(int(tokens[t])), 1, de)
	}
	return nll
}

// adam applies one step at learning rate lr and clears the gradients, then
// puts the embeddings back on their constraint.
func (n *net) adam(lr float32) {
	n.step++
	const b1, b2, eps = 0.9, 0.999, 1e-8
	c1 := float32(1 - math.Pow(b1, float64(n.step)))
	c2 := float32(1 - math.Pow(b2, float64(n.step)))
	for _, p := range n.params {
		for i, g := range p.g {
			m := b1*p.m[i] + (1-b1)*g
			v := b2*p.v[i] + (1-b2)*g*g
			p.m[i], p.v[i] = m, v
			p.w[i] -= lr * (m / c1) / (float32(math.Sqrt(float64(v/c2))) + eps)
		}
		clear(p.g)
	}
	for r := range n.cfg.Vocab {
		project(n.embed.row(r))
	}
}
