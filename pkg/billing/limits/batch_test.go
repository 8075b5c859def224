package limits

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/llmctl/llmctl/pkg/billing"
)

// TestAdmitBatch: batch lines count in their own buckets. A key at its
// interactive limits still has its lines admitted, lines never use up the
// interactive RPM, TPM or concurrency, and the batch-only limits are exact.
func TestAdmitBatch(t *testing.T) {
	for name, h := range memoryAndRedis() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := h(t).newLimiter(t, Config{Window: time.Hour,
				Key:   billing.Limits{RPM: 2, TPM: 100, MaxConcurrency: 1},
				Batch: ModelLimits{Key: billing.Limits{RPM: 3, TPM: 1000}, Tenant: billing.Limits{MaxConcurrency: 5}}})
			p := principal()
			held := admitOK(t, l, p, "m", 50) // holds the key's one slot
			// At its concurrency limit: lines are still admitted.
			var lines []billing.Ticket
			for i := range 3 {
				tk, err := l.AdmitBatch(ctx, p, "m", 300)
				if err != nil {
					t.Fatalf("line %d: %v", i+1, err)
				}
				lines = append(lines, tk)
			}
			// The batch RPM (3) is exact and its refusal names the batch lines.
			_, err := l.AdmitBatch(ctx, p, "m", 1)
			var le *billing.LimitError
			if !errors.As(err, &le) || !strings.Contains(le.Message, "(batch lines)") || le.RetryAfter <= 0 {
				t.Fatalf("fourth line: %v, want a batch RPM refusal", err)
			}
			for _, tk := range lines {
				tk.Done(ctx, billing.Usage{PromptTokens: 10})
			}
			held.Done(ctx, billing.Usage{PromptTokens: 50})
			// 900 tokens of lines left the key's TPM (100) and RPM (2) whole:
			// one more interactive request of 50 tokens, then RPM refuses.
			admitOK(t, l, p, "m", 50).Done(ctx, billing.Usage{PromptTokens: 50})
			admitRefused(t, l, p, "m", 1, "requests per minute on key "+p.KeyID+":")
		})
	}
}

// TestAdmitBatchStoredLimits: a key's stored batch RPM and TPM pace its
// batch lines in place of the config's (limits.batch), field by field, and
// leave its interactive RPM whole; a tenant's stored batch RPM applies to
// all its keys' lines; a changed stored limit applies to the next line (the
// cached buckets follow the stored limits they were built from).
func TestAdmitBatchStoredLimits(t *testing.T) {
	for name, h := range memoryAndRedis() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := h(t).newLimiter(t, Config{Window: time.Hour,
				Key:   billing.Limits{RPM: 2},
				Batch: ModelLimits{Key: billing.Limits{RPM: 100, TPM: 1000}}})
			p := principal()
			p.KeyLimits = billing.Limits{BatchRPM: 3} // TPM: the config's 1000
			batchLine := func(tokens int64) error {
				tk, err := l.AdmitBatch(ctx, p, "m", tokens)
				if err == nil {
					tk.Done(ctx, billing.Usage{PromptTokens: tokens})
				}
				return err
			}
			for i := range 3 {
				if err := batchLine(10); err != nil {
					t.Fatalf("line %d: %v", i+1, err)
				}
			}
			if err := batchLine(10); !isLimit(err, "requests per minute on key "+p.KeyID+" (batch lines): limit 3") {
				t.Fatalf("fourth line: %v, want the stored batch RPM (3) to refuse it", err)
			}
			// The interactive RPM (2) is untouched by the three lines.
			for range 2 {
				admitOK(t, l, p, "m", 1).Done(ctx, billing.Usage{PromptTokens: 1})
			}
			admitRefused(t, l, p, "m", 1, "requests per minute on key "+p.KeyID+": limit 2")

			// Raised in the store: the next line is paced by the new limit,
			// on the same counters (3 lines so far).
			p.KeyLimits.BatchRPM = 5
			for i := range 2 {
				if err := batchLine(10); err != nil {
					t.Fatalf("line %d after raising the batch RPM to 5: %v", 4+i, err)
				}
			}
			if err := batchLine(10); !isLimit(err, "(batch lines): limit 5") {
				t.Fatalf("sixth line: %v, want a refusal at the raised limit 5", err)
			}
			// The config's batch TPM (1000) still applies where no TPM is
			// stored (a line above it is too large); a stored one overrides it.
			p.KeyLimits.BatchRPM = 1000
			if err := batchLine(2000); !isLimit(err, "tokens per minute on key "+p.KeyID+" (batch lines): limit 1000") {
				t.Fatalf("a 2000-token line: %v, want the config's batch TPM 1000", err)
			}
			p.KeyLimits.BatchTPM = 5000
			if err := batchLine(2000); err != nil {
				t.Fatalf("a 2000-token line under a stored batch TPM of 5000: %v", err)
			}

			// A tenant's stored batch RPM limits every key of the tenant.
			q := principal()
			q.TenantLimits = billing.Limits{BatchRPM: 1}
			if tk, err := l.AdmitBatch(ctx, q, "m", 1); err != nil {
				t.Fatalf("tenant's first line: %v", err)
			} else {
				tk.Done(ctx, billing.Usage{})
			}
			q.KeyID = "other" + q.KeyID
			if _, err := l.AdmitBatch(ctx, q, "m", 1); !isLimit(err, "tenant "+q.TenantID+" (batch lines): limit 1") {
				t.Fatalf("another key's line: %v, want the tenant's stored batch RPM 1", err)
			}
		})
	}
}

// memoryAndRedis are the two limiter stores, by name, for tests that run
// on both.
func memoryAndRedis() map[string]func(*testing.T) harness {
	return map[string]func(*testing.T) harness{
		"Memory": func(*testing.T) harness { return memoryHarness() },
		"Redis":  redisHarness,
	}
}

func isLimit(err error, want string) bool {
	var le *billing.LimitError
	return errors.As(err, &le) && strings.Contains(le.Message, want)
}

// A batch rpm/tpm belongs on a key or tenant (or in Config.Batch): in the
// config's interactive limits it would count nothing, so it is refused.
func TestBatchFieldsRefusedInConfigLimits(t *testing.T) {
	for _, c := range []Config{
		{Key: billing.Limits{BatchRPM: 1}},
		{Tenant: billing.Limits{BatchTPM: 1}},
		{Batch: ModelLimits{Key: billing.Limits{BatchRPM: 1}}},
		{Models: map[string]ModelLimits{"m": {Tenant: billing.Limits{BatchTPM: 1}}}},
	} {
		if l, err := NewMemory(c); err == nil {
			l.Close()
			t.Errorf("NewMemory(%+v) accepted a batch limit it would not count", c)
		}
	}
}

// limits.batch in the config file reaches Config.Batch and is checked like
// the other limits.
func TestBatchSettings(t *testing.T) {
	var s Settings
	if err := yaml.Unmarshal([]byte("batch:\n  key: {rpm: 120, tpm: 400000}\n  tenant: {maxConcurrency: 8}\n"), &s); err != nil {
		t.Fatal(err)
	}
	c := s.Config(nil, nil)
	if c.Batch.Key != (billing.Limits{RPM: 120, TPM: 400000}) || c.Batch.Tenant != (billing.Limits{MaxConcurrency: 8}) {
		t.Fatalf("batch limits %+v", c.Batch)
	}
	s.Batch.Key.RPM = -1
	if err := s.Validate(); err == nil {
		t.Fatal("a negative batch limit was accepted")
	}
}
