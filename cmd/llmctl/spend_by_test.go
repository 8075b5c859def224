package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// `ledger spend --by key|model|user` splits each tenant's row, to the
// micro-unit, in every output format; an unknown split is refused.
func TestLedgerSpendBy(t *testing.T) {
	now := time.Now().UTC().Add(-time.Minute)
	dsn := acmeWithEntries(t, func(acme string) []ledger.Entry {
		return []ledger.Entry{
			{Key: "1", TenantID: acme, Kind: ledger.KindDebit, Amount: -1_000_001, Model: "m1", KeyID: "k1", EndUser: "alice", PromptTokens: 4, CachedPromptTokens: 2, Time: now},
			{Key: "2", TenantID: acme, Kind: ledger.KindDebit, Amount: -5, Model: "m2", KeyID: "k1", EndUser: "bob", Time: now},
			{Key: "3", TenantID: acme, Kind: ledger.KindDebit, Amount: -999_999, Model: "m1", KeyID: "k2", EndUser: "alice", Time: now},
		}
	})
	acme := tenantID(t, dsn, "acme")
	for by, want := range map[string]string{
		"user":   "acme,alice,2000000,2.000000,2\n" + acme + ",acme,bob,5,0.000005,1",
		"key":    "acme,k1,1000006,1.000006,2\n" + acme + ",acme,k2,999999,0.999999,1",
		"model":  "acme,m1,2000000,2.000000,2\n" + acme + ",acme,m2,5,0.000005,1",
		"tenant": "acme,2000005,2.000005,3",
	} {
		out, errOut, err := run(t, "ledger", "spend", "--by", by, "-o", "csv", "--db", dsn)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("--by %s: %v %s\n%s\nwant %s", by, err, errOut, out, want)
		}
	}
	if out, _, _ := run(t, "ledger", "spend", "--by", "user", "--db", dsn); !strings.Contains(out, "USER") || !strings.Contains(out, "alice") {
		t.Errorf("table by user:\n%s", out)
	}
	// Entries show what each charge records.
	if out, _, _ := run(t, "ledger", "entries", "-o", "csv", "--db", dsn); !strings.Contains(out, ",k1,alice,2,\n") || !strings.Contains(out, "key_id,end_user,cached_prompt_tokens,batch_id\n") {
		t.Errorf("entries -o csv:\n%s", out)
	}
	if out, _, _ := run(t, "ledger", "entries", "--db", dsn); !strings.Contains(out, "4(2 cached)+0") {
		t.Errorf("entries:\n%s", out)
	}
	if _, _, err := run(t, "ledger", "spend", "--by", "team", "--db", dsn); err == nil || !strings.Contains(err.Error(), "--by") {
		t.Errorf("--by team: %v", err)
	}
}

// acmeWithEntries is a SQLite database with tenant acme (made by the CLI)
// and the ledger entries entries(acme's id) returns applied.
func acmeWithEntries(t *testing.T, entries func(acme string) []ledger.Entry) string {
	t.Helper()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")
	if _, errOut, err := run(t, "tenants", "create", "acme", "--db", dsn); err != nil {
		t.Fatalf("%v %s", err, errOut)
	}
	lg, err := ledger.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	if _, err := lg.Apply(context.Background(), entries(tenantID(t, dsn, "acme"))); err != nil {
		t.Fatal(err)
	}
	return dsn
}
