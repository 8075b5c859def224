package serve_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/limits"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
)

// TestBatchLineFollowsStoredLimits: a batch's lines run as the principal
// the batch was created with, but each is admitted under its key's batch
// limits stored now: a key created with a batch RPM of 1 gets one line,
// the next waits (its wait ends with the batch's context: 499, not run);
// once the stored batch RPM is raised to 2, a line of the same batch (the
// same old principal) runs at once.
func TestBatchLineFollowsStoredLimits(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CreateTenant(ctx, "acme", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	k, secret, err := st.CreateKey(ctx, store.NewKey{Tenant: "acme", Limits: billing.Limits{BatchRPM: 1}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	auth := store.NewAuthenticator(st, time.Second, store.AuthClock(func() time.Time { return now }))
	lim, err := limits.NewMemory(limits.Config{Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer lim.Close()
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	f := newFixture(t, func(o *serve.Options) { o.Auth, o.Admitter = auth, lim }, d)
	created, err := auth.Authenticate(ctx, secret) // the batch's snapshot
	if err != nil {
		t.Fatal(err)
	}
	line := func(rid string, wait time.Duration) int {
		t.Helper()
		lctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		status, body := f.gw.RunLine(lctx, created, "batch_1", "/v1/chat/completions", []byte(chatBody(false, "hi")), rid)
		if status != 200 && status != 499 {
			t.Fatalf("line %s: %d %s", rid, status, body)
		}
		return status
	}
	if s := line("l1", time.Minute); s != 200 {
		t.Fatalf("first line: %d", s)
	}
	// The batch RPM of 1 holds the second line for the rest of the hour;
	// its batch's context ends the wait first.
	if s := line("l2", 200*time.Millisecond); s != 499 {
		t.Fatalf("second line under a batch RPM of 1: %d, want 499 (waited, not run)", s)
	}
	if _, err := st.SetKeyLimits(ctx, k.ID, billing.Limits{BatchRPM: 2}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second) // the authenticator reads the key again
	if s := line("l2", time.Minute); s != 200 {
		t.Fatalf("second line after the stored batch RPM was raised to 2: %d", s)
	}
	if created.KeyLimits.BatchRPM != 1 {
		t.Fatal("the batch's principal changed")
	}
}
