package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

func TestLedgerCLISQLite(t *testing.T) {
	testLedgerCLI(t, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
}

func TestLedgerCLIPostgres(t *testing.T) {
	testLedgerCLI(t, testenv.PG(t).NewDatabase(t))
}

func testLedgerCLI(t *testing.T, dsn string) {
	must := func(args ...string) string {
		t.Helper()
		out, errOut, err := run(t, append(args, "--db", dsn)...)
		if err != nil {
			t.Fatalf("llmctl %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		return out
	}
	fails := func(args ...string) error {
		t.Helper()
		_, _, err := run(t, append(args, "--db", dsn)...)
		if err == nil {
			t.Fatalf("llmctl %s succeeded", strings.Join(args, " "))
		}
		return err
	}
	must("tenants", "create", "acme")
	must("tenants", "create", "zeta")

	var bal struct {
		Tenant, Balance, Available string
		BalanceMicros              int64
	}
	if err := json.Unmarshal([]byte(must("ledger", "credit", "acme", "12.5", "--reason", "welcome", "-o", "json")), &bal); err != nil {
		t.Fatal(err)
	}
	if bal.Tenant != "acme" || bal.Balance != "12.500000" || bal.BalanceMicros != 12_500_000 {
		t.Fatalf("credit -o json: %+v", bal)
	}
	// A retried command with the same key applies once.
	// A negative amount follows "--" so it is not read as a flag.
	for range 2 {
		if _, errOut, err := run(t, "ledger", "credit", "--db", dsn, "--reason", "fix", "--idempotency-key", "fix-1", "acme", "--", "-0.000001"); err != nil {
			t.Fatalf("negative credit: %v\n%s", err, errOut)
		}
	}
	if err := json.Unmarshal([]byte(must("ledger", "balance", "acme", "-o", "json")), &bal); err != nil || bal.Balance != "12.499999" {
		t.Fatalf("balance after one correction: %+v %v", bal, err)
	}

	// Bad input is refused before anything is written.
	fails("ledger", "credit", "acme", "1.0000001", "--reason", "x")
	fails("ledger", "credit", "acme", "ten", "--reason", "x")
	fails("ledger", "credit", "acme", "5")
	fails("ledger", "credit", "nobody", "5", "--reason", "x")
	fails("ledger", "entries", "--since", "yesterday-ish")
	fails("ledger", "entries", "-o", "yaml")

	// Newest first, the tenant's id kept in JSON and its name added.
	var es []struct {
		Key, Kind, Reason, Tenant, TenantName string
		Amount                                int64
	}
	if err := json.Unmarshal([]byte(must("ledger", "entries", "--tenant", "acme", "-o", "json")), &es); err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[1].Kind != "adjustment" || es[1].Amount != 12_500_000 || es[0].Key != "fix-1" || es[0].Reason != "fix" ||
		es[0].Tenant != tenantID(t, dsn, "acme") || es[0].TenantName != "acme" {
		t.Fatalf("entries -o json: %+v", es)
	}
	// --limit keeps the newest, also with --reverse (oldest first).
	for _, args := range [][]string{{"--limit", "1"}, {"--limit", "1", "--reverse"}} {
		es = nil
		if err := json.Unmarshal([]byte(must(append([]string{"ledger", "entries", "-o", "json"}, args...)...)), &es); err != nil || len(es) != 1 || es[0].Key != "fix-1" {
			t.Fatalf("entries %v: %v %+v", args, err, es)
		}
	}
	rows, err := csv.NewReader(strings.NewReader(must("ledger", "entries", "-o", "csv", "--since", "1h"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0][4] != "amount_micros" || rows[1][4] != "-1" || rows[1][5] != "-0.000001" || rows[1][2] != "acme" {
		t.Fatalf("entries -o csv: %q", rows)
	}
	rows, err = csv.NewReader(strings.NewReader(must("ledger", "entries", "-o", "csv", "--reverse"))).ReadAll()
	if err != nil || len(rows) != 3 || rows[1][4] != "12500000" || rows[2][4] != "-1" {
		t.Fatalf("entries --reverse -o csv: %v %q", err, rows)
	}
	if out := must("ledger", "entries", "--tenant", "acme"); !strings.Contains(out, " acme ") || strings.Contains(out, tenantID(t, dsn, "acme")) {
		t.Fatalf("entries table shows the tenant by name:\n%s", out)
	}
	if out := must("ledger", "entries", "--since", time.Now().Add(time.Hour).Format(time.RFC3339)); strings.Count(out, "\n") != 1 {
		t.Fatalf("--since in the future listed entries:\n%s", out)
	}
	// Spend: debits (usage) and releases (a settled request that used
	// nothing) count; the adjustments above do not.
	acme := tenantID(t, dsn, "acme")
	lg, err := ledger.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if _, err := lg.Apply(context.Background(), []ledger.Entry{
		{Key: "req:1", TenantID: acme, Kind: ledger.KindDebit, Amount: -250_000, Model: "m", Time: now.Add(-time.Minute)},
		{Key: "req:2", TenantID: acme, Kind: ledger.KindRelease, Time: now.Add(-time.Minute)},
		{Key: "req:old", TenantID: acme, Kind: ledger.KindDebit, Amount: -1, Model: "m", Time: now.Add(-48 * time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	lg.Close()
	var spend []struct {
		Tenant, Spent string
		SpentMicros   int64
		Requests      int64
	}
	if err := json.Unmarshal([]byte(must("ledger", "spend", "-o", "json")), &spend); err != nil {
		t.Fatal(err)
	}
	if len(spend) != 1 || spend[0].Tenant != "acme" || spend[0].SpentMicros != 250_000 || spend[0].Spent != "0.250000" || spend[0].Requests != 2 {
		t.Fatalf("ledger spend -o json: %+v", spend)
	}
	if err := json.Unmarshal([]byte(must("ledger", "spend", "--since", "72h", "--until", "24h", "-o", "json")), &spend); err != nil || len(spend) != 1 || spend[0].SpentMicros != 1 {
		t.Fatalf("ledger spend over an older window: %+v %v", spend, err)
	}
	if out := must("ledger", "spend", "-o", "csv"); !strings.Contains(out, "acme,250000,0.250000,2") {
		t.Fatalf("ledger spend -o csv:\n%s", out)
	}
	fails("ledger", "spend", "--since", "1h", "--until", "2h")
	fails("ledger", "spend", "--since", "soon")
	fails("ledger", "spend", "-o", "xml")
	// The usage entries moved the balance; verify below counts them too.

	table := must("ledger", "balance")
	if !strings.Contains(table, "acme") || !strings.Contains(table, "12.249998") {
		t.Fatalf("balance table:\n%s", table)
	}

	if out := must("ledger", "verify"); out != "1 tenants, 5 entries, 0 open holds\nok: every balance equals the sum of its entries\n" {
		t.Fatalf("verify:\n%s", out)
	}
	// Stale holds: one older than any request runs is a finding; a fresh
	// one is a request in flight.
	lg, err = ledger.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	for key, age := range map[string]time.Duration{"req:stale:1": 20 * time.Minute, "req:live:2": time.Minute} {
		if err := lg.Reserve(context.Background(), ledger.HoldRequest{Key: key, TenantID: acme, Amount: 1234, Time: now.Add(-age)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fails("ledger", "verify"); !errors.Is(err, errStaleHolds) || errors.Is(err, errDrift) {
		t.Fatalf("verify with a 20-minute-old hold: %v", err)
	}
	out, _, _ := run(t, "ledger", "verify", "--db", dsn)
	if !strings.Contains(out, "1 holds older than 15m0s") || !strings.Contains(out, "req:stale:1") || strings.Contains(out, "req:live:2") ||
		!strings.Contains(out, "0.001234") || !strings.Contains(out, "ok: every balance") {
		t.Fatalf("verify with a stale hold:\n%s", out)
	}
	out, _, _ = run(t, "ledger", "verify", "-o", "json", "--db", dsn)
	var stale struct {
		MaxHoldAge string
		Holds      int64
		StaleHolds []struct {
			Key    string
			Amount int64
		}
	}
	if err := json.Unmarshal([]byte(out), &stale); err != nil || stale.MaxHoldAge != "15m0s" || stale.Holds != 2 ||
		len(stale.StaleHolds) != 1 || stale.StaleHolds[0].Key != "req:stale:1" || stale.StaleHolds[0].Amount != 1234 {
		t.Fatalf("verify -o json with a stale hold: %s %v", out, err)
	}
	must("ledger", "verify", "--max-hold-age", "30m")
	fails("ledger", "verify", "--max-hold-age", "1h")
	fails("ledger", "verify", "--max-hold-age", "0s")
	if _, err := lg.Apply(context.Background(), []ledger.Entry{
		{Key: "req:stale:1", TenantID: acme, Kind: ledger.KindRelease, Time: now},
		{Key: "req:live:2", TenantID: acme, Kind: ledger.KindRelease, Time: now},
	}); err != nil {
		t.Fatal(err)
	}
	lg.Close()
	must("ledger", "verify")

	// Drift: a balance changed behind the ledger's back.
	tamper(t, dsn, `UPDATE ledger_accounts SET balance = balance + 7`)
	if err := fails("ledger", "verify"); !errors.Is(err, errDrift) {
		t.Fatalf("verify on a drifted ledger: %v", err)
	}
	out, _, _ = run(t, "ledger", "verify", "-o", "json", "--db", dsn)
	var r struct {
		Drifts []struct {
			Balance, EntrySum int64
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Drifts) != 1 || r.Drifts[0].Balance-r.Drifts[0].EntrySum != 7 {
		t.Fatalf("verify -o json: %s %v", out, err)
	}
}

func tamper(t *testing.T, dsn, q string) {
	t.Helper()
	ctx := context.Background()
	driver, target, err := store.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if driver == store.Postgres {
		conn, err := pgx.Connect(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
		return
	}
	db, err := store.OpenSQLite(target)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, q); err != nil {
		t.Fatal(err)
	}
}

func tenantID(t *testing.T, dsn, name string) string {
	t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tn, err := st.GetTenant(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return tn.ID
}

// TestLedgerCreditNegativeAsDocumented: the documented debit form, flags
// after "-- AMOUNT", works, and a debit that leaves the balance below zero
// says so.
func TestLedgerCreditNegativeAsDocumented(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")
	if _, errOut, err := run(t, "tenants", "create", "zeta", "--db", dsn); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	out, errOut, err := run(t, "ledger", "credit", "zeta", "--", "-2.50", "--reason", "refund", "--db", dsn, "-o", "json")
	if err != nil {
		t.Fatalf("credit zeta -- -2.50 --reason refund: %v\n%s", err, errOut)
	}
	var bal struct{ BalanceMicros int64 }
	if err := json.Unmarshal([]byte(out), &bal); err != nil || bal.BalanceMicros != -2_500_000 {
		t.Fatalf("balance after the debit: %s %v", out, err)
	}
	if !strings.Contains(errOut, "warning: zeta's balance is now below zero (-2.500000)") {
		t.Fatalf("no below-zero warning on stderr: %q", errOut)
	}
	// A credit that keeps it below zero is no debit: no warning.
	if _, errOut, err = run(t, "ledger", "credit", "zeta", "1", "--reason", "part", "--db", dsn); err != nil || strings.Contains(errOut, "warning") {
		t.Fatalf("credit: %v, stderr %q", err, errOut)
	}
	_, _, err = run(t, "ledger", "credit", "zeta", "--", "-1", "extra", "--reason", "x", "--db", dsn)
	if !isUsage(err) || !strings.Contains(err.Error(), "unexpected arguments after AMOUNT: extra") {
		t.Fatalf("stray argument: %v", err)
	}
}
