package model

import (
	"sync"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/quant"
)

// acts is one activation row encoded for every weight type that reads it;
// each encoding is computed on first use.
type acts struct {
	// tile marks a token that llama.cpp would multiply with its gemm
	// kernel: one of the first n-n%4 of its sequence's n tokens in this
	// step (see quant.DotQ4_KTile).
	tile bool
	x    []float32
	q8_0 []byte
	q8k  []quant.Q8K
	f16  []uint16
	q8x  []byte // q8_0 re-encoded for the packed Q4_0 kernels
	have [4]bool
}

func (a *acts) reset(x []float32) {
	a.x = x
	a.have = [4]bool{}
}

func (a *acts) forType(t gguf.GGMLType) {
	switch t {
	case gguf.Q8_0, gguf.Q4_0:
		if !a.have[0] {
			if cap(a.q8_0) < len(a.x)/32*quant.BlockQ8_0 {
				a.q8_0 = make([]byte, len(a.x)/32*quant.BlockQ8_0)
			}
			a.q8_0 = a.q8_0[:len(a.x)/32*quant.BlockQ8_0]
			quant.QuantizeQ8_0(a.q8_0, a.x)
			a.have[0] = true
		}
	case gguf.Q4_K, gguf.Q6_K:
		if !a.have[1] {
			if cap(a.q8k) < len(a.x)/quant.QK_K {
				a.q8k = make([]quant.Q8K, len(a.x)/quant.QK_K)
			}
			a.q8k = a.q8k[:len(a.x)/quant.QK_K]
			quant.QuantizeQ8_K(a.q8k, a.x)
			a.have[1] = true
		}
	case gguf.F16:
		if !a.have[2] {
			if cap(a.f16) < len(a.x) {
				a.f16 = make([]uint16, len(a.x))
			}
			a.f16 = a.f16[:len(a.x)]
			quant.F32ToF16s(a.f16, a.x)
			a.have[2] = true
		}
	}
}

// forPacked prepares the activation encoding of the packed Q4_0 kernels.
func (a *acts) forPacked() {
	a.forType(gguf.Q4_0)
	if !a.have[3] {
		n := len(a.x) / quant.QK8_0 * quant.BlockQ8_0x
		if cap(a.q8x) < n {
			a.q8x = make([]byte, n)
		}
		a.q8x = a.q8x[:n]
		quant.PrepQ8_0x(a.q8x, a.q8_0)
		a.have[3] = true
	}
}

// matmulPacked is matmul over packed weights: groups of eight rows are
// split over the threads, and each group meets all activation rows at once.
func (p pool) matmulPacked(w *Tensor, in []acts, out [][]float32) {
	if w.Type == gguf.Q4_K {
		p.matmulPackedQ4_K(w, in, out)
		return
	}
	a := make([][]byte, len(in))
	for i := range in {
		in[i].forPacked()
		a[i] = in[i].q8x
	}
	nb := w.Cols / quant.QK4_0
	gb := nb * quant.BlockQ4_0x8
	p.run(w.Rows/8, func(lo, hi int) {
		scratch := make([]float32, 8*len(a))
		ptrs := make([]*byte, len(a))
		for g := lo; g < hi; g++ {
			quant.GemmQ4_0x8(w.packed[g*gb:(g+1)*gb], nb, a, out, 8*g, scratch, ptrs)
		}
	})
}

// matmulPackedQ4_K splits the tokens by the order llama.cpp computes them
// in (gemm for tile tokens, gemv for the rest) and runs each set through
// the packed kernel of that order.
func (p pool) matmulPackedQ4_K(w *Tensor, in []acts, out [][]float32) {
	var tiled, plain [][]quant.Q8K
	var tiledOut, plainOut [][]float32
	for i := range in {
		in[i].forType(gguf.Q4_K)
		if in[i].tile {
			tiled, tiledOut = append(tiled, in[i].q8k), append(tiledOut, out[i])
		} else {
			plain, plainOut = append(plain, in[i].q8k), append(plainOut, out[i])
		}
	}
	nb := w.Cols / quant.QK_K
	gb := nb * quant.BlockQ4_Kx8
	p.run(w.Rows/8, func(lo, hi int) {
		n := max(len(tiled), len(plain))
		scratch := make([]float32, 16*n)
		ptrs := make([]*quant.Q8K, n)
		for g := lo; g < hi; g++ {
			wg := w.packed[g*gb : (g+1)*gb]
			quant.GemmQ4_Kx8(wg, nb, tiled, true, tiledOut, 8*g, scratch, ptrs)
			quant.GemmQ4_Kx8(wg, nb, plain, false, plainOut, 8*g, scratch, ptrs)
		}
	})
}

// pool runs a function over index ranges on a fixed number of goroutines.
type pool struct {
	threads int
}

// run calls fn(lo, hi) over [0, n) split into about threads chunks and
// waits for all of them.
func (p pool) run(n int, fn func(lo, hi int)) {
	th := p.threads
	if th <= 1 || n < 2*th {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + th - 1) / th
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// matmul computes out[t][r] = W[r] · in[t] for every activation row t.
// Each weight row is read once for the whole batch; the kernel is chosen
// once per call rather than per row.
func (p pool) matmul(w *Tensor, in []acts, out [][]float32) {
	if w.packed != nil {
		p.matmulPacked(w, in, out)
		return
	}
	for i := range in {
		in[i].forType(w.Type)
	}
	n := w.Cols
	var kernel func(row []byte, a *acts) float32
	switch w.Type {
	case gguf.Q8_0:
		kernel = func(row []byte, a *acts) float32 { return quant.DotQ8_0(row, a.q8_0, n) }
	case gguf.Q4_0:
		kernel = func(row []byte, a *acts) float32 { return quant.DotQ4_0(row, a.q8_0, n) }
	case gguf.Q4_K:
		kernel = func(row []byte, a *acts) float32 { return quant.DotQ4_K(row, a.q8k, n) }
	case gguf.Q6_K:
		kernel = func(row []byte, a *acts) float32 { return quant.DotQ6_K(row, a.q8k, n) }
	case gguf.F16:
		kernel = func(row []byte, a *acts) float32 { return quant.DotF16(row, a.f16, n) }
	default:
		kernel = func(row []byte, a *acts) float32 { return quant.DotF32(row, a.x, n) }
	}
	// Four-token kernels unpack each weight block once for four tokens
	// (prompt processing and batched decoding); results are bit-identical
	// to the one-token kernels.
	var kernel4 func(row []byte, a [4]*acts, out *[4]float32)
	if len(in) >= 4 {
		switch w.Type {
		case gguf.Q4_K:
			kernel4 = func(row []byte, a [4]*acts, out *[4]float32) {
				quant.DotQ4_Kx4(row, a[0].q8k, a[1].q8k, a[2].q8k, a[3].q8k, n, out)
			}
		case gguf.Q6_K:
			kernel4 = func(row []byte, a [4]*acts, out *[4]float32) {
				quant.DotQ6_Kx4(row, a[0].q8k, a[1].q8k, a[2].q8k, a[3].q8k, n, out)
			}
		case gguf.Q8_0:
			kernel4 = func(row []byte, a [4]*acts, out *[4]float32) {
				quant.DotQ8_0x4(row, a[0].q8_0, a[1].q8_0, a[2].q8_0, a[3].q8_0, n, out)
			}
		case gguf.Q4_0:
			kernel4 = func(row []byte, a [4]*acts, out *[4]float32) {
				quant.DotQ4_0x4(row, a[0].q8_0, a[1].q8_0, a[2].q8_0, a[3].q8_0, n, out)
			}
		}
	}
	// Q4_K tokens that llama.cpp runs through its gemm kernel get that
	// kernel's rounding; there are a multiple of four of them.
	var tiled, plain []int
	for t := range in {
		if w.Type == gguf.Q4_K && in[t].tile {
			tiled = append(tiled, t)
		} else {
			plain = append(plain, t)
		}
	}
	// Tokens left over from the groups of four go through row-range
	// kernels: one call for all of a thread's rows.
	var rowsKernel func(w []byte, a *acts, out []float32)
	switch w.Type {
	case gguf.Q8_0:
		rowsKernel = func(w []byte, a *acts, out []float32) { quant.DotQ8_0Rows(w, a.q8_0, n, out) }
	case gguf.Q4_K:
		rowsKernel = func(w []byte, a *acts, out []float32) { quant.DotQ4_KRows(w, a.q8k, n, out) }
	case gguf.Q6_K:
		rowsKernel = func(w []byte, a *acts, out []float32) { quant.DotQ6_KRows(w, a.q8k, n, out) }
	}
	var tiles *quant.Q8_0Tiles
	if w.Type == gguf.Q8_0 && kernel4 != nil {
		// For Q8_0 there are no tiled tokens: plain is every token in order.
		a := make([][]byte, len(plain))
		o := make([][]float32, len(plain))
		for i, t := range plain {
			a[i], o[i] = in[t].q8_0, out[t]
		}
		b := quant.NewQ8_0Tiles(a, o, n, w.Rows)
		tiles = &b
	}
	p.run(w.Rows, func(lo, hi int) {
		rb := w.rowBytes
		var four [4]float32
		plain := plain // this thread's copy: it is shortened below
		lead := 0
		if kernel4 != nil {
			lead = len(plain) - len(plain)%4
		}
		if rowsKernel != nil {
			for _, t := range plain[lead:] {
				rowsKernel(w.Data[lo*rb:hi*rb], &in[t], out[t][lo:hi])
			}
			plain = plain[:lead]
		}
		if len(tiled) == 0 && len(plain) == 0 {
			return
		}
		r0 := lo
		if tiles != nil {
			// Two rows by four tokens at a time: each weight and activation
			// block is loaded once for eight products.
			for ; r0+2 <= hi; r0 += 2 {
				tiles.DotTiles(w.Data[r0*rb:(r0+2)*rb], rb, r0, n)
			}
		}
		for r := r0; r < hi; r++ {
			row := w.Data[r*rb : (r+1)*rb : (r+1)*rb]
			for i := 0; i+4 <= len(tiled); i += 4 {
				g := tiled[i : i+4]
				quant.DotQ4_KTile(row, in[g[0]].q8k, in[g[1]].q8k, in[g[2]].q8k, in[g[3]].q8k, n, &four)
				out[g[0]][r], out[g[1]][r], out[g[2]][r], out[g[3]][r] = four[0], four[1], four[2], four[3]
			}
			i := 0
			if kernel4 != nil {
				for ; i+4 <= len(plain); i += 4 {
					g := plain[i : i+4]
					kernel4(row, [4]*acts{&in[g[0]], &in[g[1]], &in[g[2]], &in[g[3]]}, &four)
					out[g[0]][r], out[g[1]][r], out[g[2]][r], out[g[3]][r] = four[0], four[1], four[2], four[3]
				}
			}
			for ; i < len(plain); i++ {
				t := plain[i]
				out[t][r] = kernel(row, &in[t])
			}
		}
	})
}
