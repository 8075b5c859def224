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
