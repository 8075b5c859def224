package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// TestBatchesCommand: list, show and cancel against a gateway serving the
// Batches API over a real SQLite store; another tenant's key sees nothing.
func TestBatchesCommand(t *testing.T) {
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, n := range []string{"a", "b"} {
		if _, err := st.CreateTenant(ctx, n, billing.Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	_, keyA, err := st.CreateKey(ctx, store.NewKey{Tenant: "a", Name: "ka"})
	if err != nil {
		t.Fatal(err)
	}
	_, keyB, err := st.CreateKey(ctx, store.NewKey{Tenant: "b", Name: "kb"})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := batch.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	var gw *serve.Gateway
	// No worker runs: the batch stays validating until cancelled.
	svc, err := batch.New(batch.Options{Store: bs, Runner: batch.RunnerFunc(
		func(ctx context.Context, p billing.Principal, id, ep string, body []byte, rid string) (int, []byte) {
			return gw.RunLine(ctx, p, id, ep, body, rid)
		})})
	if err != nil {
		t.Fatal(err)
	}
	if gw, err = serve.New(serve.Options{Auth: store.NewAuthenticator(st, time.Minute), Batches: svc}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	c := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey(keyA), option.WithMaxRetries(0))
	line := `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}`
	f, err := c.Files.New(ctx, openai.FileNewParams{Purpose: openai.FilePurposeBatch, File: openai.File(strings.NewReader(line), "in.jsonl", "application/jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	if err != nil {
		t.Fatal(err)
	}

	out, _, err := run(t, "batches", "list", "--server", srv.URL, "--api-key", keyA, "-o", "json")
	var list []batchView
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].ID != b.ID || list[0].InputFileID != f.ID {
		t.Fatalf("list: %v %s", err, out)
	}
	out, _, err = run(t, "batches", "show", b.ID, "--server", srv.URL, "--api-key", keyA)
	if err != nil || !strings.Contains(out, b.ID) || !strings.Contains(out, "validating") || !strings.Contains(out, "STATUS") {
		t.Fatalf("show: %v %s", err, out)
	}
	if _, _, err = run(t, "batches", "show", b.ID, "--server", srv.URL, "--api-key", keyB); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("show with another tenant's key: %v", err)
	}
	out, _, err = run(t, "batches", "cancel", b.ID, "--server", srv.URL, "--api-key", keyA, "-o", "json")
	var v batchView
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Status != "cancelling" {
		t.Fatalf("cancel: %v %s", err, out)
	}
	t.Setenv("LLMCTL_SERVER", "")
	t.Setenv("LLMCTL_API_KEY", "")
	if _, _, err := run(t, "batches", "list"); err == nil || !strings.Contains(err.Error(), "--server") {
		t.Fatalf("without a server: %v", err)
	}
}
