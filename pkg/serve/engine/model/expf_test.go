package model

import (
	"math"
	"testing"
)

func TestExpf(t *testing.T) {
	for x := float32(-90); x <= 88; x += 0.001 {
		want := math.Exp(float64(x))
		got := float64(expf(x))
		if want < 1e-37 {
			if got > 1e-37 {
				t.Fatalf("expf(%v) = %v, want ~0", x, got)
			}
			continue
		}
		if math.Abs(got-want) > 4e-7*want {
			t.Fatalf("expf(%v) = %v, want %v (rel err %.2g)", x, got, want, math.Abs(got-want)/want)
		}
	}
}
