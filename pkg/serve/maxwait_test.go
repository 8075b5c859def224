package serve

import (
	"testing"
	"time"
)

func TestParseMaxWait(t *testing.T) {
	for v, want := range map[string]time.Duration{"2": 2 * time.Second, "0.5": 500 * time.Millisecond, "750ms": 750 * time.Millisecond, "1h": time.Hour} {
		if d, err := parseMaxWait(v); err != nil || d != want {
			t.Errorf("%q → %v %v, want %v", v, d, err, want)
		}
	}
	for _, v := range []string{"0", "-1", "NaN", "Inf", "1e300", "2h", "soon", "-5ms", "0s"} {
		if d, err := parseMaxWait(v); err == nil {
			t.Errorf("%q accepted as %v", v, d)
		}
	}
}

func FuzzParseMaxWait(f *testing.F) {
	for _, s := range []string{"2", "0.5", "750ms", "1h", "NaN", "-1", "1e300", "9223372036s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := parseMaxWait(v)
		if err == nil && (d <= 0 || d > maxWaitCeiling) {
			t.Fatalf("%q → %v accepted outside (0, %v]", v, d, maxWaitCeiling)
		}
	})
}
