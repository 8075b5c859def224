package config

import (
	"strings"
	"testing"
)

func TestQueueBatchShare(t *testing.T) {
	c := Defaults("sqlite:x.db")
	if err := c.MergeFile("serve.yaml", strings.NewReader("queue:\n  batchShare: 0.25\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || c.Queue.BatchShare != 0.25 {
		t.Fatalf("batchShare %v, %v", c.Queue.BatchShare, err)
	}
	for _, v := range []float64{-0.1, 1.5} {
		bad := Defaults("sqlite:x.db")
		bad.Queue.BatchShare = v
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "queue.batchShare") {
			t.Errorf("batchShare %v: Validate() = %v, want it named", v, err)
		}
	}
}
