package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve/batch"
)

func TestBatchesCommandDBSQLite(t *testing.T) {
	testBatchesCommandDB(t, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
}

func TestBatchesCommandDBPostgres(t *testing.T) {
	testBatchesCommandDB(t, testenv.PG(t).NewDatabase(t))
}

// testBatchesCommandDB: list, show and cancel on the database with --db
// and --tenant; another tenant's batch is not found; --server and --db
// together are refused.
func testBatchesCommandDB(t *testing.T, dsn string) {
	t.Setenv("LLMCTL_SERVER", "")
	t.Setenv("LLMCTL_DB", "")
	ctx := context.Background()
	db, err := store.OpenDB(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ta, err := db.Store().CreateTenant(ctx, "a", billing.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Store().CreateTenant(ctx, "b", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	bs := batch.OnDB(db)
	now := time.Now().Truncate(time.Second)
	for i, id := range []string{"batch_old", "batch_new"} {
		created := now.Add(time.Duration(i) * time.Second)
		if err := bs.CreateBatch(ctx, batch.Batch{ID: id, TenantID: ta.ID, Principal: "{}", InputFileID: "file-" + id,
			Endpoint: "/v1/chat/completions", CompletionWindow: "24h", Metadata: `{"job":"nightly"}`,
			Status: batch.StatusValidating, CreatedAt: created, ExpiresAt: created.Add(24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := run(t, "batches", "list", "--db", dsn, "--tenant", "a", "-o", "json")
	var list []batchView
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || list[0].ID != "batch_new" || list[1].Metadata["job"] != "nightly" {
		t.Fatalf("list: %v %s", err, out)
	}
	out, _, err = run(t, "batches", "list", "--db", dsn, "--tenant", "a", "--limit", "1", "--after", "batch_new")
	if err != nil || !strings.Contains(out, "batch_old") || strings.Contains(out, "batch_new") || !strings.Contains(out, "STATUS") {
		t.Fatalf("second page: %v %s", err, out)
	}
	out, _, err = run(t, "batches", "show", "batch_old", "--db", dsn, "--tenant", "a", "-o", "yaml")
	if err != nil || !strings.Contains(out, "status: validating") {
		t.Fatalf("show: %v %s", err, out)
	}
	if _, _, err := run(t, "batches", "show", "batch_old", "--db", dsn, "--tenant", "b"); err == nil || !strings.Contains(err.Error(), "no such batch") {
		t.Fatalf("show as another tenant: %v", err)
	}
	out, _, err = run(t, "batches", "cancel", "batch_old", "--db", dsn, "--tenant", "a", "-o", "json")
	var v batchView
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Status != "cancelling" {
		t.Fatalf("cancel: %v %s", err, out)
	}
	if b, err := bs.Batch(ctx, ta.ID, "batch_old"); err != nil || b.Status != batch.StatusCancelling || b.CancellingAt.IsZero() {
		t.Fatalf("stored after cancel: %+v %v", b, err)
	}
	for _, args := range [][]string{
		{"batches", "list", "--db", dsn},
		{"batches", "list", "--db", dsn, "--server", "http://127.0.0.1:1", "--tenant", "a"},
	} {
		if _, _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), "--") {
			t.Fatalf("%v: %v", args, err)
		}
	}
}
