package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// setScales puts sane f16 scales into every block so results are finite.
func setScales(b []byte, blockBytes, off int, r *rand.Rand) {
	for i := 0; i+blockBytes <= len(b); i += blockBytes {
		binary.LittleEndian.PutUint16(b[i+off:], F32ToF16(float32(r.Float64()*0.02+0.001)))
	}
}

func close32(a, b float32) bool {
	return math.Abs(float64(a-b)) <= 1e-4*math.Max(1, math.Abs(float64(b)))
}

// TestKernelsAgree checks the selected kernels (assembly where the CPU has
// AVX2/FMA) against the portable ones on random blocks.
func TestKernelsAgree(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2/FMA on this CPU: only the portable kernels exist")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		n := QK_K * (1 + trial%4)
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		a8 := make([]byte, n/32*BlockQ8_0)
		QuantizeQ8_0(a8, x)
		ak := make([]Q8K, n/QK_K)
		QuantizeQ8_K(ak, x)

		w8 := randBytes(r, n/32*BlockQ8_0)
		setScales(w8, BlockQ8_0, 0, r)
		if got, want := DotQ8_0(w8, a8, n), dotQ8_0Generic(w8, a8, n); got != want {
			t.Fatalf("Q8_0: %v vs %v", got, want)
		}
		w4 := randBytes(r, n/32*BlockQ4_0)
		setScales(w4, BlockQ4_0, 0, r)
		if got, want := DotQ4_0(w4, a8, n), dotQ4_0Generic(w4, a8, n); got != want {
			t.Fatalf("Q4_0: %v vs %v", got, want)
		}
		wk := randBytes(r, n/QK_K*BlockQ4_K)
		setScales(wk, BlockQ4_K, 0, r)
		setScales(wk, BlockQ4_K, 2, r)
		if got, want := DotQ4_K(wk, ak, n), dotQ4_KGeneric(wk, ak, n); got != want {
			t.Fatalf("Q4_K: %v vs %v", got, want)
		}
		var x4 [4]float32
		ak2, ak3, ak4 := make([]Q8K, n/QK_K), make([]Q8K, n/QK_K), make([]Q8K, n/QK_K)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		QuantizeQ8_K(ak2, x)
		for i := range x {
			x[i] = float32(r.NormFloat64()) * 3
		}
		QuantizeQ8_K(ak3, x)
		for i := range x {
			x[i] = float32(r.NormFloat64()) * 0.1
		}
		QuantizeQ8_K(ak4, x)
		DotQ4_Kx4(wk, ak, ak2, ak3, ak4, n, &x4)
		for i, a := range [][]Q8K{ak, ak2, ak3, ak4} {
			if want := DotQ4_K(wk, a, n); x4[i] != want {
				t.Fatalf("Q4_K x4 token %d: %v, single-token kernel %v", i, x4[i], want)
			}
		}
		DotQ4_KTile(wk, ak, ak2, ak3, ak4, n, &x4)
		for i, a := range [][]Q8K{ak, ak2, ak3, ak4} {
			if want := dotQ4_KTileGeneric(wk, a, n); x4[i] != want {
				t.Fatalf("Q4_K tile token %d: %v, portable %v", i, x4[i], want)
			}
		}
		var a8s [4][]byte
		for k := range a8s {
			for i := range x {
				x[i] = float32(r.NormFloat64()) * float32(k+1)
			}
			a8s[k] = make([]byte, len(a8))
			QuantizeQ8_0(a8s[k], x)
		}
		DotQ8_0x4(w8, a8s[0], a8s[1], a8s[2], a8s[3], n, &x4)
		for k := range a8s {
			if want := DotQ8_0(w8, a8s[k], n); x4[k] != want {
				t.Fatalf("Q8_0 x4 token %d: %v, single-token kernel %v", k, x4[k], want)
			}
		}
		DotQ4_0x4(w4, a8s[0], a8s[1], a8s[2], a8s[3], n, &x4)
		for k := range a8s {
			if want := DotQ4_0(w4, a8s[k], n); x4[k] != want {
				t.Fatalf("Q4_0 x4 token %d: %v, single-token kernel %v", k, x4[k], want)
			}
		}
		w6 := randBytes(r, n/QK_K*BlockQ6_K)
		setScales(w6, BlockQ6_K, 208, r)
		if got, want := DotQ6_K(w6, ak, n), dotQ6_KGeneric(w6, ak, n); got != want {
			t.Fatalf("Q6_K: %v vs %v", got, want)
		}
		DotQ6_Kx4(w6, ak, ak2, ak3, ak4, n, &x4)
		for i, a := range [][]Q8K{ak, ak2, ak3, ak4} {
			if want := DotQ6_K(w6, a, n); x4[i] != want {
				t.Fatalf("Q6_K x4 token %d: %v, single-token kernel %v", i, x4[i], want)
			}
		}
		// and against the dequantized weights in float
		deq := make([]float32, n)
		DequantRow(14, w6, deq)
		xq := make([]float32, n)
		for i := range xq {
			xq[i] = ak[i/QK_K].D * float32(ak[i/QK_K].Qs[i%QK_K])
		}
		var ref float64
		for i := range deq {
			ref += float64(deq[i]) * float64(xq[i])
		}
		if got := DotQ6_K(w6, ak, n); math.Abs(float64(got)-ref) > 1e-3*math.Max(1, math.Abs(ref)) {
			t.Fatalf("Q6_K vs dequantized: %v vs %v", got, ref)
		}
	}
}

// TestAttentionKernelsAgree checks the llama.cpp-order attention kernels
// (ggml_vec_dot_f16 for one token, tinyBLAS for a batch) bit for bit
// against their portable versions.
func TestAttentionKernelsAgree(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2/FMA on this CPU: only the portable kernels exist")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, hd := range []int{32, 64, 128} {
		const stride, n = 160, 77
		k := make([]uint16, n*stride)
		for i := range k {
			k[i] = F32ToF16(float32(r.NormFloat64()))
		}
		q := make([]float32, hd)
		for i := range q {
			q[i] = RoundF16(float32(r.NormFloat64()))
		}
		p := make([]float32, n)
		for i := range p {
			p[i] = RoundF16(float32(r.Float64() / 10))
		}
		got, want := make([]float32, n), make([]float32, n)
		ScoresF16Vec(got, k, stride, q)
		scoresF16VecGeneric(want, k, stride, q)
		if !slices.Equal(got, want) {
			t.Fatalf("hd %d: ScoresF16Vec %v, portable %v", hd, got[:4], want[:4])
		}
		ScoresF16Tile(got, k, stride, q)
		scoresF16TileGeneric(want, k, stride, q)
		if !slices.Equal(got, want) {
			t.Fatalf("hd %d: ScoresF16Tile %v, portable %v", hd, got[:4], want[:4])
		}
		ScoresF16Vec(got[:0], k, stride, q) // n = 0 is a no-op
		ScoresF16Tile(got[:0], k, stride, q)
		for _, lanes := range []int{8, 32} {
			a, b := make([]float32, lanes*hd), make([]float32, lanes*hd)
			mixAcc(a, k, stride, p, hd, lanes)
			mixAccGeneric(b, k, stride, p, hd, lanes)
			if !slices.Equal(a, b) {
				t.Fatalf("hd %d lanes %d: mixAcc differs from portable", hd, lanes)
			}
		}
		// The whole weighted sums, reductions included.
		dst, want := make([]float32, hd), make([]float32, hd)
		acc := make([]float32, 32*hd)
		MixF16Tile(dst, k, stride, p, acc)
		clear(acc)
		mixAccGeneric(acc[:8*hd], k, stride, p, hd, 8)
		mixReduce8Generic(want, acc)
		if !slices.Equal(dst, want) {
			t.Fatalf("hd %d: MixF16Tile differs from portable", hd)
		}
		MixF16Vec(dst, k, stride, p, acc)
		clear(acc)
		mixAccGeneric(acc, k, stride, p, hd, 32)
		mixReduce32Generic(want, acc)
		if !slices.Equal(dst, want) {
			t.Fatalf("hd %d: MixF16Vec differs from portable", hd)
		}
	}
}
