package quant

import (
	"math"
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
