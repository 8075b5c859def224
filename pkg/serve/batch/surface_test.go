package batch_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// regateway replaces e's gateway (and its test server) by one built with
// the same store, ledger and backend, and mutate applied to its options:
// a limiter, a registry. Lines run through the new one too.
func (e *env) regateway(t *testing.T, dsn string, mutate func(*serve.Options)) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := batch.New(e.svcOpts)
	if err != nil {
		t.Fatal(err)
	}
	opts := serve.Options{Auth: store.NewAuthenticator(st, time.Minute), Reserver: e.l, Batches: svc,
		Remotes: []serve.RemoteConfig{{Name: "d", URL: e.double.URL()}}}
	mutate(&opts)
	if e.gw, err = serve.New(opts); err != nil {
		t.Fatal(err)
	}
	e.gw.CheckBackends(ctx)
	e.srv = httptest.NewServer(e.gw)
	t.Cleanup(e.srv.Close)
}

// waitStatus reads batch id from the store (not the API: an API call is a
// request of the key) until it has status want.
func (e *env) waitStatus(t *testing.T, id string, want batch.Status) batch.Batch {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := e.bs.Batch(context.Background(), e.tenantA, id)
		if err != nil {
			t.Fatal(err)
		}
		if b.Status == want {
			return b
		}
		if b.Status.Terminal() || time.Now().After(deadline) {
			t.Fatalf("batch %s is %s, want %s (completed %d, failed %d)", id, b.Status, want, b.Completed, b.Failed)
		}
	}
}

// waitLines waits until n lines of batch id are recorded.
func (e *env) waitLines(t *testing.T, id string, n int64) batch.Batch {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, err := e.bs.Batch(context.Background(), e.tenantA, id)
		if err != nil {
			t.Fatal(err)
		}
		if b.Completed+b.Failed >= n {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s: %d of %d lines recorded", id, b.Completed+b.Failed, n)
		}
	}
}
