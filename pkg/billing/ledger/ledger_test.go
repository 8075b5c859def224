package ledger_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

var testPrices = ledger.Prices{
	Models:  map[string]ledger.Price{"m": {Input: 1_000_000, Output: 2_000_000}},
	Default: ledger.Price{Input: 3, Output: 5},
}

func newLedger(t testing.TB, s ledger.Store, spoolDir string, mod func(*ledger.Config)) *ledger.Ledger {
	t.Helper()
	cfg := ledger.Config{Prices: testPrices, SpoolDir: spoolDir}
	if mod != nil {
		mod(&cfg)
	}
	l, err := ledger.New(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func fund(t testing.TB, s ledger.Store, tenant string, amount ledger.Micros) {
	t.Helper()
	e := ledger.Entry{Key: "fund:" + tenant, TenantID: tenant, Kind: ledger.KindCredit, Amount: amount, Time: time.Now()}
	if _, err := s.Apply(context.Background(), []ledger.Entry{e}); err != nil {
		t.Fatal(err)
	}
}

func req(tenant, id, model string, prompt, maxTokens int64) billing.ReserveRequest {
	return billing.ReserveRequest{Principal: billing.Principal{TenantID: tenant}, RequestID: id, Model: model, PromptTokens: prompt, MaxTokens: maxTokens}
}

// drained waits until the ledger has written everything it journaled.
func drained(t testing.TB, l *ledger.Ledger) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for l.Depth() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("ledger still has %d entries spooled", l.Depth())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func account(t testing.TB, s ledger.Store, tenant string) ledger.Account {
	t.Helper()
	a, err := s.Account(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func clean(t testing.TB, s ledger.Store) ledger.Report {
	t.Helper()
	r, err := s.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("verify: %+v", r)
	}
	return r
}

func TestReserveSettle(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": sqliteDSN, "postgres": pgDSN} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t, dsn(t))
			defer s.Close()
			l := newLedger(t, s, t.TempDir(), nil)
			defer l.Close(ctx)
			fund(t, s, "a", 10*ledger.Unit)

			// Max cost: 1000 prompt at 1/M + 500 completion at 2/M = 2000 µ.
			// Each charge records the API key of its request.
			r1 := req("a", "r1", "m", 1000, 500)
			r1.Principal.KeyID = "key1"
			h, err := l.Reserve(ctx, r1)
			if err != nil {
				t.Fatal(err)
			}
			if got := account(t, s, "a"); got.Reserved != 2000 {
				t.Fatalf("reserved %s, want 0.002000", got.Reserved)
			}
			// Default max_tokens (4096) when the request sets none.
			r2 := req("a", "r2", "m", 0, 0)
			r2.Principal.KeyID = "key2"
			h2, err := l.Reserve(ctx, r2)
			if err != nil {
				t.Fatal(err)
			}
			if got := account(t, s, "a"); got.Reserved != 2000+8192 {
				t.Fatalf("reserved %s, want 0.010192", got.Reserved)
			}
			h.Settle(ctx, billing.Usage{PromptTokens: 100, CompletionTokens: 51}) // 100 + 102 µ
			h.Settle(ctx, billing.Usage{PromptTokens: 1, CompletionTokens: 1})    // ignored
			h2.Settle(ctx, billing.Usage{})                                       // released
			drained(t, l)
			if got := account(t, s, "a"); got.Balance != 10*ledger.Unit-202 || got.Reserved != 0 {
				t.Fatalf("account %+v, want balance 9.999798 and nothing reserved", got)
			}
			es, err := s.Entries(ctx, ledger.Filter{TenantID: "a"})
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != 3 || es[1].Kind != ledger.KindDebit || es[1].PromptTokens != 100 || es[1].CompletionTokens != 51 ||
				!strings.HasPrefix(es[1].Key, "req:r1:") || es[2].Kind != ledger.KindRelease || es[2].Amount != 0 ||
				es[0].KeyID != "" || es[1].KeyID != "key1" || es[2].KeyID != "key2" {
				t.Fatalf("entries: %+v", es)
			}
			clean(t, s)
		})
	}
}

func TestReserveRefusals(t *testing.T) {
	ctx := context.Background()
	s := open(t, sqliteDSN(t))
	defer s.Close()
	l := newLedger(t, s, t.TempDir(), nil)
	defer l.Close(ctx)
	fund(t, s, "a", 1999)
	if _, err := l.Reserve(ctx, req("a", "r", "m", 1000, 500)); !errors.Is(err, billing.ErrInsufficientQuota) {
		t.Fatalf("want ErrInsufficientQuota, got %v", err)
	}
	if _, err := l.Reserve(ctx, req("a", "r", "unpriced", 1, 1)); !errors.Is(err, ledger.ErrUnknownModel) {
		t.Fatalf("unknown model under reject: want ErrUnknownModel, got %v", err)
	}
	if got := account(t, s, "a"); got.Reserved != 0 {
		t.Fatalf("a refusal reserved %s", got.Reserved)
	}

	// Under the default policy an unpriced model costs the default price;
	// an overdraft lets a tenant go below zero by at most that much.
	l2 := newLedger(t, s, t.TempDir(), func(c *ledger.Config) {
		c.Prices.UnknownModel = ledger.UnknownDefault
		c.Overdraft = 100
	})
	defer l2.Close(ctx)
	h, err := l2.Reserve(ctx, req("a", "r", "unpriced", 1_000_000, 1_000_000)) // 3 + 5 µ
	if err != nil {
		t.Fatal(err)
	}
	h.Settle(ctx, billing.Usage{PromptTokens: 1_000_000, CompletionTokens: 1_000_000})
	if _, err := l2.Reserve(ctx, req("a", "big", "m", 2000, 0)); !errors.Is(err, billing.ErrInsufficientQuota) {
		t.Fatalf("beyond overdraft: want ErrInsufficientQuota, got %v", err)
	}
	h3, err := l2.Reserve(ctx, req("a", "ok", "m", 2000, 20))
	if err != nil {
		t.Fatalf("2040 µ within balance 1991 + overdraft 100: %v", err)
	}
	h3.Settle(ctx, billing.Usage{PromptTokens: 2000, CompletionTokens: 20})
	drained(t, l2)
	if got := account(t, s, "a"); got.Balance != 1999-8-2040 || got.Reserved != 0 {
		t.Fatalf("account %+v", got)
	}
	clean(t, s)
}

// TestDatabaseOutage stops PostgreSQL under the ledger: settlements still
// return, wait in the spool, and land exactly once when it is back.
func TestDatabaseOutage(t *testing.T) {
	ctx := context.Background()
	pg := testenv.PG(t)
	s := open(t, pgDSN(t))
	defer s.Close()
	l := newLedger(t, s, t.TempDir(), nil)
	defer l.Close(ctx)
	fund(t, s, "a", ledger.Unit)
	var holds []billing.Hold
	for i := range 200 {
		h, err := l.Reserve(ctx, req("a", fmt.Sprint("r", i), "m", 10, 10)) // 30 µ
		if err != nil {
			t.Fatal(err)
		}
		holds = append(holds, h)
	}
	if err := pg.Stop(true); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_ = pg.Start()
		}
	}()
	for _, h := range holds {
		h.Settle(ctx, billing.Usage{PromptTokens: 5, CompletionTokens: 5}) // 15 µ
	}
	if d := l.Depth(); d != 200 {
		t.Fatalf("spool depth %d with the database down, want 200", d)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	drained(t, l)
	if got := account(t, s, "a"); got.Balance != ledger.Unit-200*15 || got.Reserved != 0 {
		t.Fatalf("account %+v after the outage", got)
	}
	if r := clean(t, s); r.Entries != 201 {
		t.Fatalf("%d entries, want 201", r.Entries)
	}
}

// TestCloseLeavesSpoolForNextStart: a graceful shutdown with the database
// down keeps the entries on disk, and the next start writes them.
func TestCloseLeavesSpoolForNextStart(t *testing.T) {
	ctx := context.Background()
	pg := testenv.PG(t)
	dsn := pgDSN(t)
	s := open(t, dsn)
	defer s.Close()
	spoolDir := t.TempDir()
	l := newLedger(t, s, spoolDir, func(c *ledger.Config) { c.AdmitWhenDown = true })
	fund(t, s, "a", ledger.Unit)
	if err := pg.Stop(true); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		h, err := l.Reserve(ctx, req("a", fmt.Sprint("r", i), "m", 10, 10))
		if err != nil {
			pg.Start()
			t.Fatalf("AdmitWhenDown refused: %v", err)
		}
		h.Settle(ctx, billing.Usage{PromptTokens: 1, CompletionTokens: 1}) // 3 µ
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := l.Close(short); err == nil {
		pg.Start()
		t.Fatal("Close reported success with 50 entries unwritten")
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	l2 := newLedger(t, s, spoolDir, nil)
	drained(t, l2)
	if err := l2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := account(t, s, "a"); got.Balance != ledger.Unit-150 {
		t.Fatalf("balance %s after replay, want 0.999850", got.Balance)
	}
	if left, _ := filepath.Glob(filepath.Join(spoolDir, "*.spool")); len(left) != 0 {
		t.Fatalf("spool segments left after a clean drain: %v", left)
	}
	clean(t, s)
}

// TestCrashReplay SIGKILLs a process that settles requests while the
// database is down, restarts on its spool, and finds every settlement the
// process acknowledged in the database exactly once.
func TestCrashReplay(t *testing.T) {
	if dir := os.Getenv("LEDGER_CRASH_SPOOL"); dir != "" {
		crashHelper(dir, os.Getenv("LEDGER_CRASH_DSN"))
		return
	}
	ctx := context.Background()
	pg := testenv.PG(t)
	dsn := pgDSN(t)
	s := open(t, dsn)
	defer s.Close()
	fund(t, s, "a", ledger.Unit)
	spoolDir := t.TempDir()

	cmd, out := startChild(t, "TestCrashReplay", "LEDGER_CRASH_SPOOL="+spoolDir, "LEDGER_CRASH_DSN="+dsn)
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	stopped := false
	for sc.Scan() {
		acked[sc.Text()] = true
		if len(acked) == 100 && !stopped {
			if err := pg.Stop(true); err != nil {
				t.Fatal(err)
			}
			stopped = true
		}
		if len(acked) == 300 {
			break
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	if len(acked) < 300 {
		t.Fatalf("helper acknowledged only %d settlements", len(acked))
	}
	l := newLedger(t, s, spoolDir, nil)
	drained(t, l)
	l.Close(ctx)
	es, err := s.Entries(ctx, ledger.Filter{TenantID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	released := 0
	for _, e := range es[1:] {
		rid := strings.Split(e.Key, ":")[1]
		seen[rid]++
		if e.KeyID != "crashkey" {
			// Replayed settlements and restart releases keep the key.
			t.Fatalf("entry %+v lost its request's key id", e)
		}
		switch {
		case e.Kind == ledger.KindRelease && !acked[rid]:
			// The request in flight at the kill: its hold is released
			// at the restart, nothing charged.
			released++
		case e.Amount != -3:
			t.Fatalf("entry %+v charged %s, want 0.000003", e, e.Amount)
		}
	}
	if released > 1 {
		t.Fatalf("%d requests released at the restart; the helper has one in flight at a time", released)
	}
	for rid := range acked {
		if seen[rid] != 1 {
			t.Fatalf("acknowledged settlement %s is in the database %d times", rid, seen[rid])
		}
	}
	if r := clean(t, s); r.Holds != 0 {
		t.Fatalf("%d holds left open after the restart", r.Holds)
	}
}

// startChild runs this test binary's test named test in a child process
// with env added (the test's helper mode), and returns its stdout.
func startChild(t *testing.T, test string, env ...string) (*exec.Cmd, io.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

func crashHelper(spoolDir, dsn string) {
	ctx := context.Background()
	s, err := ledger.Open(ctx, dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	l, err := ledger.New(s, ledger.Config{Prices: testPrices, SpoolDir: spoolDir, AdmitWhenDown: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		rid := fmt.Sprint("c", i)
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r := req("a", rid, "m", 1, 1)
		r.Principal.KeyID = "crashkey"
		h, err := l.Reserve(rctx, r)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		h.Settle(ctx, billing.Usage{PromptTokens: 1, CompletionTokens: 1})
		fmt.Fprintln(w, rid) // acknowledged: Settle returned
		w.Flush()
	}
}

// Entries waiting out BatchDelay are already journaled; until they reach
// the database their holds still count against the balance, so the delay
// can only refuse early, never let a tenant spend what it does not have;
// and Close writes them without waiting out the delay.
func TestBatchDelayKeepsHoldsCountedUntilWritten(t *testing.T) {
	ctx := context.Background()
	s := open(t, pgDSN(t))
	defer s.Close()
	fund(t, s, "d", ledger.Unit)
	l := newLedger(t, s, t.TempDir(), func(c *ledger.Config) { c.BatchDelay = time.Hour })
	h, err := l.Reserve(ctx, req("d", "r1", "m", 10, 10))
	if err != nil {
		t.Fatal(err)
	}
	held := account(t, s, "d").Reserved
	if held <= 0 {
		t.Fatalf("reserved %s after Reserve", held)
	}
	h.Settle(ctx, billing.Usage{PromptTokens: 1, CompletionTokens: 1}) // journaled, not written
	if l.Depth() != 1 {
		t.Fatalf("depth %d, want the settlement waiting", l.Depth())
	}
	if a := account(t, s, "d"); a.Reserved != held || a.Balance != ledger.Unit {
		t.Fatalf("before the write: %+v, want the hold of %s still counted and the balance untouched", a, held)
	}
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.Close(closeCtx); err != nil {
		t.Fatalf("Close waited out the batch delay: %v", err)
	}
	a := account(t, s, "d")
	if a.Reserved != 0 || a.Balance >= ledger.Unit {
		t.Fatalf("after Close: %+v, want the hold released and the usage charged", a)
	}
	clean(t, s)
}
