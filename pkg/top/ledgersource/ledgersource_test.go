package ledgersource

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/top"
	"github.com/llmctl/llmctl/pkg/top/toptest"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestSQLite(t *testing.T) {
	run(t, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
}

func TestPostgres(t *testing.T) {
	run(t, testenv.PG(t).NewDatabase(t))
}

func run(t *testing.T, dsn string) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	populate(t, dsn, now)

	src, closeFn, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	rows, err := src.Tenants(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]top.TenantRow{}
	for _, r := range rows {
		got[r.Name] = r
	}
	want := map[string]top.TenantRow{
		// credit 100, debits 0.50 (30 min ago) and 0.25 (3 h ago), a release (10 min ago)
		"acme": {Balance: 99_250_000, Spend1h: 500_000, Spend24h: 750_000, Requests1h: 2, Requests24h: 3},
		// one debit of 1.00 25 h ago: outside the day
		"beta": {Balance: -1_000_000},
		"idle": {},
	}
	if len(got) != len(want) {
		t.Fatalf("tenants = %+v, want %d", rows, len(want))
	}
	for name, w := range want {
		g := got[name]
		if g.ID == "" || g.Balance != w.Balance || g.Spend1h != w.Spend1h || g.Spend24h != w.Spend24h || g.Requests1h != w.Requests1h || g.Requests24h != w.Requests24h {
			t.Errorf("%s = %+v, want %+v", name, g, w)
		}
	}

	es, err := src.Entries(ctx, got["acme"].ID, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 || es[0].Kind != "release" || es[1].Amount != -500_000 || es[2].Amount != -250_000 {
		t.Fatalf("newest 3 entries = %+v", es)
	}
	if es[1].Model != "llama" || es[1].PromptTokens != 10 || es[1].CompletionTokens != 20 {
		t.Errorf("entry fields lost: %+v", es[1])
	}
	all, err := src.Entries(ctx, got["acme"].ID, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 || all[3].Kind != "credit" {
		t.Fatalf("all entries = %+v, want 4 ending with the 2-day-old credit", all)
	}
	checkMargin(t, src, now)
	checkMarginEnergy(t, src, now)
}

func populate(t *testing.T, dsn string, now time.Time) {
	t.Helper()
	toptest.Ledger(t, dsn, []string{"acme", "beta", "idle"}, func(ids map[string]string) []ledger.Entry {
		i := 0
		e := func(tenant string, kind ledger.Kind, amt ledger.Micros, ago time.Duration) ledger.Entry {
			i++
			return ledger.Entry{Key: fmt.Sprintf("k%d", i), TenantID: ids[tenant], Kind: kind, Amount: amt, Model: "llama",
				PromptTokens: 10, CompletionTokens: 20, Time: now.Add(-ago)}
		}
		return []ledger.Entry{
			e("acme", ledger.KindCredit, 100*ledger.Unit, 48*time.Hour),
			e("acme", ledger.KindDebit, -250_000, 3*time.Hour),
			e("acme", ledger.KindDebit, -500_000, 30*time.Minute),
			e("acme", ledger.KindRelease, 0, 10*time.Minute),
			e("beta", ledger.KindDebit, -ledger.Unit, 25*time.Hour),
		}
	})
}
