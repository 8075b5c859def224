package sample

import "testing"

func TestGreedy(t *testing.T) {
	s := New(Params{})
	if got := s.Next([]float32{0.1, 3, -1, 2.9}, nil); got != 1 {
		t.Fatalf("greedy picked %d", got)
	}
}

func TestRepeatPenaltyChangesGreedy(t *testing.T) {
	s := New(Params{RepeatPenalty: 1.5})
	// token 1 (3.0) was just produced; 3.0/1.5 = 2.0 < 2.9
	if got := s.Next([]float32{0.1, 3, -1, 2.9}, []int32{1}); got != 3 {
		t.Fatalf("penalized greedy picked %d, want 3", got)
	}
}

func TestSeedReproduces(t *testing.T) {
	logits := func() []float32 { return []float32{1, 1.1, 0.9, 1.05, 0.5, 1.2, 0.2, 1} }
	run := func(seed uint64) []int32 {
		s := New(Params{Temperature: 1, Seed: seed})
		var out []int32
		for range 50 {
			out = append(out, s.Next(logits(), nil))
		}
		return out
	}
	a, b, c := run(7), run(7), run(8)
	same := func(x, y []int32) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Fatal("same seed gave different samples")
	}
	if same(a, c) {
		t.Fatal("different seeds gave identical 50-token samples")
	}
}

func TestTopKAndMinPRestrict(t *testing.T) {
	l := []float32{5, 4.9, 0, 0, 0, 0}
	for seed := range uint64(200) {
		if got := New(Params{Temperature: 1, TopK: 2, Seed: seed}).Next(append([]float32(nil), l...), nil); got > 1 {
			t.Fatalf("top-k 2 sampled token %d", got)
		}
		if got := New(Params{Temperature: 1, MinP: 0.5, Seed: seed}).Next(append([]float32(nil), l...), nil); got > 1 {
			t.Fatalf("min-p 0.5 sampled token %d", got)
		}
		if got := New(Params{Temperature: 1, TopP: 0.3, Seed: seed}).Next(append([]float32(nil), l...), nil); got != 0 {
			t.Fatalf("top-p 0.3 sampled token %d", got)
		}
	}
}

func TestTemperatureSpreads(t *testing.T) {
	s := New(Params{Temperature: 1, Seed: 1})
	seen := map[int32]bool{}
	for range 200 {
		seen[s.Next([]float32{1, 1, 1, 1}, nil)] = true
	}
	if len(seen) != 4 {
		t.Fatalf("uniform logits sampled only %v", seen)
	}
}
