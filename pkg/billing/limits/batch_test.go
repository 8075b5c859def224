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
	for name, h := range map[string]func(*testing.T) harness{
		"Memory": func(*testing.T) harness { return memoryHarness() },
		"Redis":  redisHarness,
	} {
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
