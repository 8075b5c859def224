package main

import (
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// `ledger spend --by batch` splits each tenant's row by batch ("" for
// interactive requests), to the micro-unit; entries show the batch.
func TestLedgerSpendByBatch(t *testing.T) {
	now := time.Now().UTC().Add(-time.Minute)
	dsn := acmeWithEntries(t, func(acme string) []ledger.Entry {
		return []ledger.Entry{
			{Key: "1", TenantID: acme, Kind: ledger.KindDebit, Amount: -500_001, Model: "m", KeyID: "k", BatchID: "batch_x", Time: now},
			{Key: "2", TenantID: acme, Kind: ledger.KindDebit, Amount: -5, Model: "m", KeyID: "k", Time: now},
			{Key: "3", TenantID: acme, Kind: ledger.KindDebit, Amount: -499_999, Model: "m", KeyID: "k", BatchID: "batch_x", Time: now},
		}
	})
	acme := tenantID(t, dsn, "acme")
	out, errOut, err := run(t, "ledger", "spend", "--by", "batch", "-o", "csv", "--db", dsn)
	if want := "tenant_id,tenant,batch,spent_micros,spent,requests\n" + acme + ",acme,,5,0.000005,1\n" + acme + ",acme,batch_x,1000000,1.000000,2\n"; err != nil || out != want {
		t.Errorf("--by batch: %v %s\n%s\nwant %s", err, errOut, out, want)
	}
	if out, _, _ := run(t, "ledger", "spend", "--by", "batch", "-o", "json", "--db", dsn); !strings.Contains(out, `"batchId": "batch_x"`) {
		t.Errorf("-o json by batch:\n%s", out)
	}
	if out, _, _ := run(t, "ledger", "spend", "--by", "batch", "--db", dsn); !strings.Contains(out, "BATCH") || !strings.Contains(out, "batch_x") {
		t.Errorf("table by batch:\n%s", out)
	}
}
