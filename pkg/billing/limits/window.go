package limits

import "time"

// counters is one bucket's sliding-window-counter state: requests and tokens
// counted in the current fixed window (RC, TC) and in the one before it
// (RP, TP). W is the current window's id (floor(unix ms / window ms)).
//
// The Lua script in redis.lua keeps exactly these fields in a Redis hash and
// implements exactly the same arithmetic; the in-process store uses this Go
// code. The shared conformance suite checks that both agree.
type counters struct {
	W              int64
	RP, RC, TP, TC int64
}

// at returns the counters as seen from window wid: a window that just ended
// becomes "previous", anything older is forgotten.
func (c counters) at(wid int64) counters {
	switch c.W {
	case wid:
		return c
	case wid - 1:
		return counters{W: wid, RP: c.RC, TP: c.TC}
	default:
		return counters{W: wid}
	}
}

// over reports whether adding cost to a window whose count is cur, after a
// previous window of prev, exceeds limit at elapsed ms into a window of win
// ms. The previous window is weighted by the part of it the sliding window
// still covers: estimate = prev·(win−elapsed)/win + cur. The comparison is
// done multiplied out by win so it is exact integer arithmetic (the Lua
// script does the same with doubles, exact below 2^53).
func over(limit, prev, cur, cost, elapsed, win int64) bool {
	return (cur+cost)*win+prev*(win-elapsed) > limit*win
}

// remaining is limit minus the estimate, rounded down, never negative.
func remaining(limit, prev, cur, elapsed, win int64) int64 {
	r := limit*win - cur*win - prev*(win-elapsed)
	if r <= 0 {
		return 0
	}
	return r / win
}

// resetIn is how long until the estimate is back to zero if nothing more
// arrives: what OpenAI's x-ratelimit-reset-* headers mean.
func resetIn(prev, cur, elapsed, win int64) time.Duration {
	switch {
	case cur > 0:
		return time.Duration(2*win-elapsed) * time.Millisecond
	case prev > 0:
		return time.Duration(win-elapsed) * time.Millisecond
	default:
		return 0
	}
}

// retryIn is how long until cost more would fit under limit if nothing more
// arrives, or -1 if it never can (cost alone is over the limit).
func retryIn(limit, prev, cur, cost, elapsed, win int64) time.Duration {
	if cost > limit {
		return -1
	}
	if !over(limit, prev, cur, cost, elapsed, win) {
		return 0
	}
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	if cur+cost <= limit {
		// Fits in this window once the previous window's weight has decayed
		// enough: prev·(win−e) ≤ (limit−cur−cost)·win.
		e := ceilDiv(win*prev-(limit-cur-cost)*win, prev)
		return ms(e - elapsed)
	}
	// Only in the next window, where this window's count becomes "previous".
	e := int64(0)
	if cur > 0 {
		e = max(0, ceilDiv(win*cur-(limit-cost)*win, cur))
	}
	return ms(win - elapsed + e)
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) == (b < 0) {
		q++
	}
	return q
}
