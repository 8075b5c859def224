package limits

import (
	"math/rand/v2"
	"testing"
	"time"
)

// fitsAt replays the window arithmetic d after (prev, cur) at elapsed, with
// no new traffic in between.
func fitsAt(limit, prev, cur, cost, elapsed, win int64, d time.Duration) bool {
	t := elapsed + d.Milliseconds()
	switch {
	case t < win:
		return !over(limit, prev, cur, cost, t, win)
	case t < 2*win:
		return !over(limit, cur, 0, cost, t-win, win)
	default:
		return cost <= limit
	}
}

// retryIn must be the earliest moment the request fits: it fits then, and
// not a millisecond before.
func TestRetryInIsTheEarliestFit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		win := int64(1 + r.IntN(60000))
		limit := int64(1 + r.IntN(50))
		prev, cur := int64(r.IntN(60)), int64(r.IntN(60))
		cost := int64(r.IntN(int(limit) + 2))
		elapsed := int64(r.IntN(int(win)))
		d := retryIn(limit, prev, cur, cost, elapsed, win)
		if cost > limit {
			if d != -1 {
				t.Fatalf("cost %d over limit %d: retry %v, want never", cost, limit, d)
			}
			continue
		}
		if !fitsAt(limit, prev, cur, cost, elapsed, win, d) {
			t.Fatalf("L=%d p=%d c=%d cost=%d e=%d w=%d: does not fit after %v", limit, prev, cur, cost, elapsed, win, d)
		}
		if d > 0 && fitsAt(limit, prev, cur, cost, elapsed, win, d-time.Millisecond) {
			t.Fatalf("L=%d p=%d c=%d cost=%d e=%d w=%d: fits before %v", limit, prev, cur, cost, elapsed, win, d)
		}
	}
}

func TestRemainingAndReset(t *testing.T) {
	for _, c := range []struct {
		limit, prev, cur, elapsed, win, rem int64
		reset                               time.Duration
	}{
		{10, 0, 0, 0, 60000, 10, 0},
		{10, 0, 3, 1000, 60000, 7, 119 * time.Second},
		{10, 10, 0, 30000, 60000, 5, 30 * time.Second},   // half the previous window still weighs
		{10, 10, 6, 30000, 60000, 0, 90 * time.Second},   // 5 + 6 > 10: none left, never negative
		{10, 4, 2, 15000, 60000, 5, 105 * time.Second},   // 10 − (3 + 2)
		{100, 99, 0, 59999, 60000, 99, time.Millisecond}, // almost all decayed: 0.00165 rounds the estimate up
	} {
		if got := remaining(c.limit, c.prev, c.cur, c.elapsed, c.win); got != c.rem {
			t.Errorf("remaining%+v = %d, want %d", c, got, c.rem)
		}
		if got := resetIn(c.prev, c.cur, c.elapsed, c.win); got != c.reset {
			t.Errorf("resetIn%+v = %v, want %v", c, got, c.reset)
		}
	}
}

func TestCountersRollOver(t *testing.T) {
	c := counters{W: 7, RP: 1, RC: 2, TP: 3, TC: 4}
	if got := c.at(7); got != c {
		t.Errorf("same window changed: %+v", got)
	}
	if got, want := c.at(8), (counters{W: 8, RP: 2, TP: 4}); got != want {
		t.Errorf("next window: %+v, want %+v", got, want)
	}
	if got, want := c.at(9), (counters{W: 9}); got != want {
		t.Errorf("two windows on: %+v, want %+v", got, want)
	}
}
