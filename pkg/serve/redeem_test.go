package serve

import (
	"testing"
	"time"
)

// The per-key attempt budget: a full bucket, then refusals saying when the
// next attempt is due, refilled at the rate; keys apart; a refused attempt
// takes nothing; negative is off.
func TestRedeemLimiter(t *testing.T) {
	l := newRedeemLimiter(0) // the default
	now := time.Unix(1_700_000_000, 0)
	for i := range DefaultRedeemPerMinute {
		if ok, _ := l.allow("k1", now); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	ok, wait := l.allow("k1", now)
	if ok || wait <= 0 || wait > 6*time.Second {
		t.Fatalf("attempt %d: %v, wait %s; want refused for at most 6 s", DefaultRedeemPerMinute+1, ok, wait)
	}
	if ok, _ := l.allow("k2", now); !ok {
		t.Fatal("another key shares the bucket")
	}
	// Refusals do not dig the hole deeper: one token is back after 6 s.
	for range 5 {
		l.allow("k1", now)
	}
	if ok, _ := l.allow("k1", now.Add(6*time.Second)); !ok {
		t.Fatal("no attempt after the refill interval")
	}
	if ok, _ := l.allow("k1", now.Add(6*time.Second)); ok {
		t.Fatal("more than one attempt refilled in 6 s")
	}
	off := newRedeemLimiter(-1)
	for range 1000 {
		if ok, _ := off.allow("k", now); !ok {
			t.Fatal("limit -1 refused")
		}
	}
}
