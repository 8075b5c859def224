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

func TestQueueBatchHeadroom(t *testing.T) {
	for _, c := range []struct {
		yaml string
		n    int
		auto bool
	}{{"", 0, true}, {"queue:\n  batchHeadroom: auto\n", 0, true}, {"queue:\n  batchHeadroom: 0\n", 0, false}, {"queue:\n  batchHeadroom: 3\n", 3, false}} {
		cfg := Defaults("sqlite:x.db")
		if err := cfg.MergeFile("serve.yaml", strings.NewReader(c.yaml)); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if n, auto := cfg.Queue.BatchHeadroomSlots(); n != c.n || auto != c.auto {
			t.Errorf("%q: batchHeadroom %d auto %v, want %d %v", c.yaml, n, auto, c.n, c.auto)
		}
	}
	for _, v := range []string{"-1", "lots", "2.5", "Auto"} {
		bad := Defaults("sqlite:x.db")
		bad.Queue.BatchHeadroom = v
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "queue.batchHeadroom") {
			t.Errorf("batchHeadroom %q: Validate() = %v, want it named", v, err)
		}
	}
}
