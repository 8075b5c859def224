package quant

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestVecHelpersAgree checks the eight-at-a-time helpers against their
// scalar definitions, bit for bit, on lengths with and without a tail.
func TestVecHelpersAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{1, 7, 8, 13, 64, 100} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(9)-4)))
		}
		h := make([]uint16, n)
		F32ToF16s(h, x)
		for i, v := range x {
			if h[i] != F32ToF16(v) {
				t.Fatalf("F32ToF16s[%d] of %v: %#x, want %#x", i, v, h[i], F32ToF16(v))
			}
		}
		rd := make([]float32, n)
		ScaleRoundF16(rd, x, 0.37)
		for i, v := range x {
			if want := RoundF16(v * 0.37); rd[i] != want {
				t.Fatalf("ScaleRoundF16[%d]: %v, want %v", i, rd[i], want)
			}
		}
		cs := make([]float32, n)
		for i := 0; i+1 < n; i += 2 {
			a := r.Float64() * 6.3
			cs[i], cs[i+1] = float32(math.Cos(a)), float32(math.Sin(a))
		}
		got := append([]float32(nil), x...)
		RopePairs(got, cs)
		for i := 0; i+1 < n; i += 2 {
			w0 := FMA32(x[i], cs[i], -float32(x[i+1]*cs[i+1]))
			w1 := FMA32(x[i], cs[i+1], float32(x[i+1]*cs[i]))
			if got[i] != w0 || got[i+1] != w1 {
				t.Fatalf("RopePairs pair %d: %v %v, want %v %v", i/2, got[i], got[i+1], w0, w1)
			}
		}
	}
}

// TestQuantizeAgrees checks the assembly activation quantizers against the
// portable ones (ggml's reference steps), byte for byte, including all-zero
// blocks and ties between +max and -max.
func TestQuantizeAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for trial := range 20 {
		n := QK_K * (1 + trial%3)
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * math.Pow(10, float64(trial%5-2)))
		}
		switch trial % 4 {
		case 1:
			clear(x[:QK_K]) // an all-zero block
		case 2:
			x[5], x[17] = -9, 9 // a tie: the first one decides the sign
		case 3:
			x[40] = float32(math.Round(float64(x[40]))) + 0.5
		}
		got8, want8 := make([]byte, n/32*BlockQ8_0), make([]byte, n/32*BlockQ8_0)
		QuantizeQ8_0(got8, x)
		quantizeQ8_0Generic(want8, x)
		if string(got8) != string(want8) {
			t.Fatalf("trial %d: Q8_0 encodings differ", trial)
		}
		gotk, wantk := make([]Q8K, n/QK_K), make([]Q8K, n/QK_K)
		for i := range gotk {
			gotk[i].D = 42 // must be overwritten
			gotk[i].Qs[3] = 9
		}
		QuantizeQ8_K(gotk, x)
		quantizeQ8_KGeneric(wantk, x)
		for i := range gotk {
			if gotk[i] != wantk[i] {
				t.Fatalf("trial %d: Q8_K block %d differs: D %v vs %v", trial, i, gotk[i].D, wantk[i].D)
			}
		}
	}
}

// TestSoftmaxHelpersAgree checks SwiGLUDiv, ScaleMax and SoftmaxSum against
// their scalar definitions, bit for bit.
func TestSoftmaxHelpersAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, n := range []int{1, 5, 8, 9, 64, 131} {
		g, ex, u := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range g {
			g[i], ex[i], u[i] = float32(r.NormFloat64()), float32(r.ExpFloat64()), float32(r.NormFloat64())
		}
		got := append([]float32(nil), g...)
		SwiGLUDiv(got, ex, u)
		for i := range g {
			if want := g[i] / (1 + ex[i]) * u[i]; got[i] != want {
				t.Fatalf("SwiGLUDiv[%d] (n %d): %v, want %v", i, n, got[i], want)
			}
		}
		x := append([]float32(nil), g...)
		mx := ScaleMax(x, 0.125)
		want := float32(math.Inf(-1))
		for i := range g {
			if x[i] != g[i]*0.125 {
				t.Fatalf("ScaleMax[%d]: %v, want %v", i, x[i], g[i]*0.125)
			}
			want = max(want, x[i])
		}
		if mx != want {
			t.Fatalf("ScaleMax max (n %d): %v, want %v", n, mx, want)
		}
		var sum float64
		for j0 := 0; j0 < n; j0 += 8 {
			var l [8]float32
			copy(l[:], ex[j0:min(j0+8, n)])
			r0, r1, r2, r3 := l[4]+l[0], l[5]+l[1], l[6]+l[2], l[7]+l[3]
			sum += float64((r0 + r2) + (r1 + r3))
		}
		if s := SoftmaxSum(ex); s != sum {
			t.Fatalf("SoftmaxSum (n %d): %v, want %v", n, s, sum)
		}
	}
}
