package config

import (
	"strings"
	"testing"
	"time"
)

func TestBatchLease(t *testing.T) {
	c := Defaults("sqlite:x.db")
	if err := c.MergeFile("serve.yaml", strings.NewReader("batch:\n  leaseTTL: 6s\n  leaseRenew: 1s\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || c.Batch.LeaseTTL != 6*time.Second || c.Batch.LeaseRenew != time.Second {
		t.Fatalf("batch %+v, %v", c.Batch, err)
	}
	for _, b := range []Batch{{LeaseTTL: -time.Second}, {LeaseTTL: 5 * time.Second, LeaseRenew: 5 * time.Second}, {LeaseRenew: time.Minute}} {
		bad := Defaults("sqlite:x.db")
		bad.Batch = b
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "batch") {
			t.Errorf("%+v: Validate() = %v, want the batch section named", b, err)
		}
	}
}

func TestBatchInputLimits(t *testing.T) {
	c := Defaults("sqlite:x.db")
	if err := c.MergeFile("serve.yaml", strings.NewReader("batch:\n  maxFileBytes: 4096\n  maxLineBytes: 1024\n  maxLines: 7\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || c.Batch.MaxFileBytes != 4096 || c.Batch.MaxLineBytes != 1024 || c.Batch.MaxLines != 7 {
		t.Fatalf("batch %+v, %v", c.Batch, err)
	}
	for _, b := range []Batch{{MaxFileBytes: -1}, {MaxLines: -1}, {MaxFileBytes: 100, MaxLineBytes: 200}} {
		bad := Defaults("sqlite:x.db")
		bad.Batch = b
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "batch") {
			t.Errorf("%+v: Validate() = %v, want the batch section named", b, err)
		}
	}
	if err := c.MergeFile("serve.yaml", strings.NewReader("batch:\n  maxFileByte: 1\n")); err == nil || !strings.Contains(err.Error(), "maxFileByte") {
		t.Fatalf("a misspelt field: %v", err)
	}
}
