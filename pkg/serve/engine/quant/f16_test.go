package quant

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// refF16 rounds v to binary16 by search: the nearest representable value,
// ties to the even mantissa.
func refF16(v float32) uint16 {
	if v != v {
		return 0x7e00
	}
	sign := uint16(0)
	if math.Signbit(float64(v)) {
		sign = 0x8000
	}
	a := math.Abs(float64(v))
	if a >= 65520 {
		return sign | 0x7c00
	}
	best := uint16(0)
	bestD := math.Inf(1)
	// binary search over the monotone positive encodings 0..0x7bff
	lo, hi := 0, 0x7bff
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if float64(F16ToF32(uint16(mid))) <= a {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	for _, c := range []int{lo, lo + 1} {
		if c > 0x7c00 {
			continue
		}
		d := math.Abs(float64(F16ToF32(uint16(c))) - a)
		if d < bestD || (d == bestD && c%2 == 0) {
			best, bestD = uint16(c), d
		}
	}
	return sign | best
}

func TestF32ToF16(t *testing.T) {
	for b := uint64(0); b < 1<<32; b += 65537 {
		v := math.Float32frombits(uint32(b))
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			continue
		}
		if got, want := F32ToF16(v), refF16(v); got != want {
			t.Fatalf("F32ToF16(%g) = %#04x, want %#04x", v, got, want)
		}
	}
	for h := range 0x7c00 {
		if got := F32ToF16(F16ToF32(uint16(h))); got != uint16(h) {
			t.Fatalf("round trip of %#04x gave %#04x", h, got)
		}
	}
}

// TestFMA32 checks the fast path against the exact construction, including
// operands built to land the float64 result on a float32 midpoint.
func TestFMA32(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 2_000_000 {
		a := float32(r.NormFloat64())
		b := float32(r.NormFloat64())
		c := float32(r.NormFloat64()) * float32(math.Ldexp(1, r.IntN(60)-30))
		if i%2 == 1 {
			// c cancels most of a*b, leaving the low product bits
			c = -float32(float64(a) * float64(b))
		}
		if got, want := FMA32(a, b, c), fma32Exact(a, b, c); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("FMA32(%v, %v, %v) = %v, exact %v", a, b, c, got, want)
		}
		if i%10 == 0 {
			// and the exact construction against arbitrary precision
			x := new(big.Float).SetPrec(300).SetFloat64(float64(a))
			x.Mul(x, new(big.Float).SetPrec(300).SetFloat64(float64(b)))
			x.Add(x, new(big.Float).SetPrec(300).SetFloat64(float64(c)))
			if want, _ := x.Float32(); want != fma32Exact(a, b, c) && !(want == 0 && fma32Exact(a, b, c) == 0) {
				t.Fatalf("fma32Exact(%v, %v, %v) = %v, want %v", a, b, c, fma32Exact(a, b, c), want)
			}
		}
	}
	// 1+2^-24 is a float32 midpoint; the tiny third term must decide it.
	a, b, c := float32(1+0x1p-12), float32(1+0x1p-12), float32(-0x1p-11)
	if got := FMA32(a, b, c); got != fma32Exact(a, b, c) {
		t.Fatalf("midpoint case: %v vs %v", got, fma32Exact(a, b, c))
	}
}
