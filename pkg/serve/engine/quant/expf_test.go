package quant

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestExpf(t *testing.T) {
	for x := float32(-90); x <= 88; x += 0.001 {
		want := math.Exp(float64(x))
		got := float64(Expf(x))
		if want < 1e-37 {
			if got > 1e-37 {
				t.Fatalf("Expf(%v) = %v, want ~0", x, got)
			}
			continue
		}
		if math.Abs(got-want) > 4e-7*want {
			t.Fatalf("Expf(%v) = %v, want %v (rel err %.2g)", x, got, want, math.Abs(got-want)/want)
		}
	}
}

// TestExpSubAgrees checks the eight-lane assembly against Expf bit for bit,
// including blocks that must take the element-by-element path.
func TestExpSubAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	src := make([]float32, 4099)
	for i := range src {
		src[i] = float32(r.NormFloat64() * 30)
	}
	got := make([]float32, len(src))
	for _, neg := range []bool{false, true} {
		for _, s := range []float32{0, 1.5, -20} {
			ExpSub(got, src, s, neg)
			for i, v := range src {
				want := Expf(v - s)
				if neg {
					want = Expf(s - v)
				}
				if math.Float32bits(got[i]) != math.Float32bits(want) {
					t.Fatalf("neg %v s %v: ExpSub(%v) = %v, Expf %v", neg, s, v, got[i], want)
				}
			}
		}
	}
}
