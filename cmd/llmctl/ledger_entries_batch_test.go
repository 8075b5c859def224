package main

import (
	"context"
	"encoding/csv"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve/admin"
)

// TestLedgerEntriesBatchID: `ledger entries` shows the batch a charge
// belongs to: in CSV as the last column, batch_id (golden file; the columns
// before it are unchanged, for consumers that read by position), in JSON as
// batchId and in the table; with --db and with --server alike.
func TestLedgerEntriesBatchID(t *testing.T) {
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")
	ls, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	lg, err := ledger.New(ls, ledger.Config{SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close(ctx)
	st, srvURL, adminKey := adminGateway(t, dsn, func(o *admin.Options) { o.Ledger = admin.FromLedger(lg) })
	ten, err := st.CreateTenant(ctx, "acme", billing.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	if _, err := ls.Apply(ctx, []ledger.Entry{
		{Key: "credit-1", TenantID: ten.ID, Kind: ledger.KindCredit, Amount: 2_000_000, Reason: "invoice 1", Time: at},
		{Key: "line-1", TenantID: ten.ID, Kind: ledger.KindDebit, Amount: -500_001, Model: "m", KeyID: "k1", BatchID: "batch_x",
			PromptTokens: 10, CompletionTokens: 5, Time: at.Add(time.Second)},
		{Key: "chat-1", TenantID: ten.ID, Kind: ledger.KindDebit, Amount: -7, Model: "m", KeyID: "k1", EndUser: "alice",
			PromptTokens: 3, CachedPromptTokens: 1, Time: at.Add(2 * time.Second)},
	}); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := run(t, "ledger", "entries", "--reverse", "-o", "csv", "--db", dsn)
	if err != nil {
		t.Fatalf("%v %s", err, errOut)
	}
	checkGolden(t, "ledger-entries.csv", out)

	remote, errOut, err := run(t, "ledger", "entries", "--tenant", "acme", "--reverse", "-o", "csv", "--server", srvURL, "--api-key", adminKey)
	if err != nil {
		t.Fatalf("--server: %v %s", err, errOut)
	}
	rows, err := csv.NewReader(strings.NewReader(remote)).ReadAll()
	if err != nil || len(rows) != 4 {
		t.Fatalf("--server -o csv: %v %q", err, rows)
	}
	for i, want := range []string{"batch_id", "", "batch_x", ""} {
		if got := rows[i][len(rows[i])-1]; got != want {
			t.Errorf("--server -o csv row %d ends with %q, want %q: %q", i, got, want, rows[i])
		}
	}

	for _, where := range [][]string{{"--db", dsn}, {"--tenant", "acme", "--server", srvURL, "--api-key", adminKey}} {
		js, _, err := run(t, append([]string{"ledger", "entries", "-o", "json"}, where...)...)
		if err != nil || strings.Count(js, `"batchId": "batch_x"`) != 1 {
			t.Errorf("%s -o json: %v\n%s", where[len(where)-2], err, js)
		}
		table, _, err := run(t, append([]string{"ledger", "entries"}, where...)...)
		if err != nil || !strings.Contains(table, "BATCH") || !strings.Contains(table, " batch_x ") {
			t.Errorf("%s table: %v\n%s", where[len(where)-2], err, table)
		}
	}
}
