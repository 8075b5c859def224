package ledger

import (
	"strings"
	"testing"
)

// FuzzBatchLineKey: a batch line's key gives its request id back, any key
// read as one is exactly the key of what it returns, and an interactive
// request's key (random suffix) is never read as one.
func FuzzBatchLineKey(f *testing.F) {
	for _, s := range []string{"batch_1-2", "batch_1-2-r3", "", ":batch", "req:x:batch", "a:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if rid, ok := BatchLineRequestID(BatchLineKey(s)); !ok || rid != s {
			t.Fatalf("BatchLineRequestID(BatchLineKey(%q)) = %q, %v", s, rid, ok)
		}
		if rid, ok := BatchLineRequestID(s); ok && BatchLineKey(rid) != s {
			t.Fatalf("%q read as request id %q, whose key is %q", s, rid, BatchLineKey(rid))
		}
		if k := chargeKey(s); len(s) <= 128 && !strings.Contains(s, ":batch") {
			if _, ok := BatchLineRequestID(k); ok {
				t.Fatalf("interactive key %q read as a batch line's", k)
			}
		}
	})
}
