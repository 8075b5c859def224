package metrics

import (
	"reflect"
	"testing"
)

// Every replica reports the same batches (from the shared store): two
// targets give one row per batch, not doubled counts.
func TestSummarizeBatches(t *testing.T) {
	series := func(completed float64) []Series {
		l := func(state string) map[string]string {
			return map[string]string{"batch": "batch_1", "tenant": "ten_a", "status": "in_progress", "state": state}
		}
		return []Series{{Name: BatchProgress, Labels: l("total"), Value: 100}, {Name: BatchProgress, Labels: l("completed"), Value: completed},
			{Name: BatchProgress, Labels: l("failed"), Value: 2}}
	}
	tr := Summarize([]Window{{Target: "a", Seconds: 1, Series: series(40)}, {Target: "b", Seconds: 1, Series: series(41)}})
	want := []Batch{{ID: "batch_1", Tenant: "ten_a", Status: "in_progress", Total: 100, Completed: 41, Failed: 2}}
	if !reflect.DeepEqual(tr.Batches, want) {
		t.Fatalf("batches %+v, want %+v", tr.Batches, want)
	}
	if tr := Summarize([]Window{{Target: "a", Seconds: 1}}); tr.Batches != nil {
		t.Fatalf("no batch series gave %+v", tr.Batches)
	}
}
