package limits

import (
	"context"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
)

// A key's stored limits that change between two requests apply to the
// second at once: the cached buckets are only used for the limits they
// were built from. And a model's own limits apply only to that model.
func TestBucketCacheFollowsStoredLimits(t *testing.T) {
	l, err := NewMemory(Config{Window: time.Hour, Models: map[string]ModelLimits{"slow": {Key: billing.Limits{RPM: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := principal()
	p.KeyLimits = billing.Limits{RPM: 1}
	admitOK(t, l, p, "m", 1).Done(context.Background(), billing.Usage{})
	admitRefused(t, l, p, "m", 1, "requests per minute on key "+p.KeyID+": limit 1")
	p.KeyLimits.RPM = 3 // raised in the store
	for range 2 {
		admitOK(t, l, p, "m", 1).Done(context.Background(), billing.Usage{})
	}
	admitRefused(t, l, p, "m", 1, "limit 3")
	p.KeyLimits.RPM = 1 // and lowered again: the same counters, the new limit
	admitRefused(t, l, p, "m", 1, "limit 1")

	q := principal()
	admitOK(t, l, q, "slow", 1).Done(context.Background(), billing.Usage{})
	admitRefused(t, l, q, "slow", 1, "on model slow: limit 1")
	for range 3 { // no limit of its own, none by default
		tk, err := l.Admit(context.Background(), q, "fast", 1)
		if err != nil {
			t.Fatalf("model without limits: %v", err)
		}
		tk.Done(context.Background(), billing.Usage{})
	}
}
