package limits

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	keystore "github.com/llmctl/llmctl/pkg/billing/store"
)

// TestStoredBatchLimits: a key's batch RPM stored in the database (SQLite,
// PostgreSQL) reaches the limiter (in process, Redis) through the
// authenticator's principal: its batch lines are paced by it, not by the
// config's limits.batch, while its interactive RPM stays whole; a limit
// changed in the store applies to the line after the key is read again.
func TestStoredBatchLimits(t *testing.T) {
	stores := map[string]func(t *testing.T) string{
		"SQLite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db") },
		"Postgres": func(t *testing.T) string { return testenv.PG(t).NewDatabase(t) },
	}
	for sn, dsn := range stores {
		for ln, h := range memoryAndRedis() {
			t.Run(sn+"/"+ln, func(t *testing.T) {
				ctx := context.Background()
				st, err := keystore.Open(ctx, dsn(t))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				if _, err := st.CreateTenant(ctx, "acme", billing.Limits{}); err != nil {
					t.Fatal(err)
				}
				k, secret, err := st.CreateKey(ctx, keystore.NewKey{Tenant: "acme", Limits: billing.Limits{RPM: 2, BatchRPM: 3}})
				if err != nil {
					t.Fatal(err)
				}
				now := time.Now()
				auth := keystore.NewAuthenticator(st, time.Second, keystore.AuthClock(func() time.Time { return now }))
				principal := func() billing.Principal {
					t.Helper()
					p, err := auth.Authenticate(ctx, secret)
					if err != nil {
						t.Fatal(err)
					}
					return p
				}
				// The config's batch RPM (100) is what the stored 3 overrides.
				l := h(t).newLimiter(t, Config{Window: time.Hour, Batch: ModelLimits{Key: billing.Limits{RPM: 100}}})
				line := func() error {
					// A batch runs as its creator's principal kept as JSON
					// (pkg/serve/batch): the batch limits survive that.
					var p billing.Principal
					if b, err := json.Marshal(principal()); err != nil || json.Unmarshal(b, &p) != nil {
						t.Fatalf("principal snapshot: %v", err)
					}
					tk, err := l.AdmitBatch(ctx, p, "m", 10)
					if err == nil {
						tk.Done(ctx, billing.Usage{PromptTokens: 10})
					}
					return err
				}
				for i := range 3 {
					if err := line(); err != nil {
						t.Fatalf("line %d: %v", i+1, err)
					}
				}
				if err := line(); !isLimit(err, "requests per minute on key "+k.ID+" (batch lines): limit 3") {
					t.Fatalf("fourth line: %v, want the stored batch RPM 3", err)
				}
				// The stored interactive RPM (2) is whole after 3 lines.
				for range 2 {
					admitOK(t, l, principal(), "m", 1).Done(ctx, billing.Usage{PromptTokens: 1})
				}
				admitRefused(t, l, principal(), "m", 1, "requests per minute on key "+k.ID+": limit 2")

				// Raised in the store: once the authenticator reads the key
				// again, the next line is admitted under the new limit.
				if _, err := st.SetKeyLimits(ctx, k.ID, billing.Limits{RPM: 2, BatchRPM: 4}); err != nil {
					t.Fatal(err)
				}
				now = now.Add(time.Second)
				if err := line(); err != nil {
					t.Fatalf("line after raising the stored batch RPM to 4: %v", err)
				}
				if err := line(); !isLimit(err, "(batch lines): limit 4") {
					t.Fatalf("fifth line: %v, want the raised limit 4", err)
				}
				admitRefused(t, l, principal(), "m", 1, "requests per minute on key "+k.ID+": limit 2")
			})
		}
	}
}
