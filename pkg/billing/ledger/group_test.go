package ledger_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// groupUsage is request i's usage in the group commit tests: varied, so a
// settlement charged under another's amount would show.
func groupUsage(i int) billing.Usage {
	return billing.Usage{PromptTokens: int64(i%7 + 1), CompletionTokens: int64(i%5 + 1)}
}

// groupCost is what groupUsage(i) costs at testPrices' model "m"
// (1 µ per prompt token, 2 µ per completion token).
func groupCost(i int) ledger.Micros {
	u := groupUsage(i)
	return ledger.Micros(u.PromptTokens + 2*u.CompletionTokens)
}

var groupStores = map[string]func(testing.TB) string{"sqlite": sqliteDSN, "postgres": pgDSN}

// TestGroupCommitConcurrentSettlesDurable: many requests settle at once,
// so the journal groups their fsyncs (GroupWait on, the default). A child
// process settles from 16 goroutines with the database writer held back
// (a long BatchDelay, so nothing reaches the database before the kill: the
// spool alone must carry every settlement), printing each request once its
// Settle returned; it is SIGKILLed, and a ledger restarted on its spool
// must put every acknowledged settlement in the database exactly once at
// its exact amount, release the holds in flight, and leave the account
// equal, to the micro-unit, to the funding minus what was charged.
func TestGroupCommitConcurrentSettlesDurable(t *testing.T) {
	if dir := os.Getenv("LEDGER_GROUP_SPOOL"); dir != "" {
		groupHelper(dir, os.Getenv("LEDGER_GROUP_DSN"))
		return
	}
	const workers, want = 16, 400
	for name, newDSN := range groupStores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dsn := newDSN(t)
			s := open(t, dsn)
			defer s.Close()
			const funded = 10 * ledger.Unit
			fund(t, s, "a", funded)
			spoolDir := t.TempDir()
			cmd, out := startChild(t, "TestGroupCommitConcurrentSettlesDurable", "LEDGER_GROUP_SPOOL="+spoolDir, "LEDGER_GROUP_DSN="+dsn)
			acked := map[string]bool{}
			sc := bufio.NewScanner(out)
			for len(acked) < want && sc.Scan() {
				acked[sc.Text()] = true
			}
			_ = cmd.Process.Signal(syscall.SIGKILL)
			// What it printed before the kill is acknowledged too.
			for sc.Scan() {
				acked[sc.Text()] = true
			}
			_ = cmd.Wait()
			// A killed client's last COMMIT may still be running in
			// PostgreSQL; a hold committing after the restart's release of
			// it would wait out HoldTTL (the documented backstop), which is
			// not what this test is about.
			waitSessionsGone(t, dsn)
			if len(acked) < want {
				t.Fatalf("helper acknowledged only %d settlements", len(acked))
			}
			l := newLedger(t, s, spoolDir, nil)
			drained(t, l)
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			es, err := s.Entries(ctx, ledger.Filter{TenantID: "a"})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			var charged ledger.Micros
			unacked := 0
			for _, e := range es {
				if e.Kind == ledger.KindCredit {
					continue
				}
				rid := strings.Split(e.Key, ":")[1]
				seen[rid]++
				i, err := strconv.Atoi(strings.TrimPrefix(rid, "g"))
				if err != nil {
					t.Fatalf("entry %+v: unexpected key", e)
				}
				switch e.Kind {
				case ledger.KindDebit:
					if e.Amount != -groupCost(i) {
						t.Fatalf("request %s charged %s, want %s", rid, -e.Amount, groupCost(i))
					}
					charged += groupCost(i)
					if !acked[rid] {
						unacked++ // settled, killed before it printed
					}
				case ledger.KindRelease:
					if acked[rid] {
						t.Fatalf("acknowledged settlement %s was released, not charged", rid)
					}
					unacked++ // in flight at the kill: released at the restart
				default:
					t.Fatalf("unexpected entry %+v", e)
				}
			}
			for rid := range acked {
				if seen[rid] != 1 {
					t.Fatalf("acknowledged settlement %s is in the database %d times", rid, seen[rid])
				}
			}
			if unacked > workers {
				t.Fatalf("%d entries for unacknowledged requests; at most %d were in flight", unacked, workers)
			}
			if got := account(t, s, "a"); got.Balance != funded-charged || got.Reserved != 0 {
				t.Fatalf("account %+v, want balance %s and nothing reserved", got, funded-charged)
			}
			if r := clean(t, s); r.Holds != 0 {
				t.Fatalf("%d holds left open after the restart", r.Holds)
			}
		})
	}
}

// waitSessionsGone waits until no other session of dsn's
// PostgreSQL database is busy (nothing to wait for on SQLite).
func waitSessionsGone(t *testing.T, dsn string) {
	t.Helper()
	driver, target, err := store.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if driver != store.Postgres {
		return
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions of the killed process still busy", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func groupHelper(spoolDir, dsn string) {
	ctx := context.Background()
	s, err := ledger.Open(ctx, dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// The writer waits an hour for a batch: what survives the kill is
	// what the journal made durable.
	l, err := ledger.New(s, ledger.Config{Prices: testPrices, SpoolDir: spoolDir, BatchDelay: time.Hour, BatchMax: 1 << 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var next int
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				rid := fmt.Sprint("g", i)
				h, err := l.Reserve(ctx, req("a", rid, "m", 7, 5))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				h.Settle(ctx, groupUsage(i))
				mu.Lock()
				fmt.Fprintln(os.Stdout, rid) // acknowledged: Settle returned
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestGroupCommitCountsEverySettlement: with settlements grouped under
// fsyncs, every one is in exactly one group (the group size histogram's sum
// is the number of settlements) and lands in the database to the
// micro-unit, on both stores.
func TestGroupCommitCountsEverySettlement(t *testing.T) {
	const workers, each = 16, 40
	for name, newDSN := range groupStores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t, newDSN(t))
			defer s.Close()
			reg := prometheus.NewRegistry()
			l := newLedger(t, s, t.TempDir(), func(c *ledger.Config) { c.Registerer = reg })
			const funded = ledger.Unit
			fund(t, s, "a", funded)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for j := range each {
						i := w*each + j
						h, err := l.Reserve(ctx, req("a", fmt.Sprint("g", i), "m", 7, 5))
						if err != nil {
							t.Error(err)
							return
						}
						h.Settle(ctx, groupUsage(i))
					}
				})
			}
			wg.Wait()
			drained(t, l)
			var charged ledger.Micros
			for i := range workers * each {
				charged += groupCost(i)
			}
			if got := account(t, s, "a"); got.Balance != funded-charged || got.Reserved != 0 {
				t.Fatalf("account %+v, want balance %s and nothing reserved", got, funded-charged)
			}
			if r := clean(t, s); r.Entries != workers*each+1 {
				t.Fatalf("%d entries, want %d", r.Entries, workers*each+1)
			}
			h := groupHistogram(t, reg)
			if h.GetSampleSum() != workers*each {
				t.Fatalf("%v settlements in fsync groups, want %d", h.GetSampleSum(), workers*each)
			}
			t.Logf("%d settlements in %d fsyncs", workers*each, h.GetSampleCount())
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func groupHistogram(t testing.TB, reg *prometheus.Registry) *dto.Histogram {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "llmctl_ledger_journal_group_size" {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatal("no llmctl_ledger_journal_group_size")
	return nil
}
