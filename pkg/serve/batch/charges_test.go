package batch

import (
	"strings"
	"testing"
)

// FuzzLineOfRequest: a run's request id gives back its line, whatever the
// batch id; anything else is refused or read as a line whose own id
// starts the request id.
func FuzzLineOfRequest(f *testing.F) {
	f.Add("batch_1", int64(3), uint8(0), "batch_1-3-r2")
	f.Add("b", int64(0), uint8(7), "b-")
	f.Add("b-1", int64(12), uint8(1), "b-1-x")
	f.Fuzz(func(t *testing.T, batchID string, line int64, runs uint8, other string) {
		if line < 0 {
			line = -(line + 1)
		}
		c := LineCharge{Runs: int(runs)}
		rid, ok := runID(batchID, line, c)
		if !ok {
			t.Fatalf("runID refused %+v", c)
		}
		if got, ok := lineOfRequest(batchID, rid); !ok || got != line {
			t.Fatalf("lineOfRequest(%q, %q) = %d, %v; want %d", batchID, rid, got, ok, line)
		}
		if n, ok := lineOfRequest(batchID, other); ok && (n < 0 || !strings.HasPrefix(other, requestID(batchID, n)[:len(batchID)+1])) {
			t.Fatalf("lineOfRequest(%q, %q) = %d", batchID, other, n)
		}
	})
}
