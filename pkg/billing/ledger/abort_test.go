package ledger_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// bothStores names a DSN maker per store; every money test runs on each.
func bothStores() map[string]func(testing.TB) string {
	return map[string]func(testing.TB) string{"sqlite": sqliteDSN, "postgres": pgDSN}
}

// abortAfterCommit is a store whose Reserve commits the hold and then
// answers what a driver answers when the client's cancellation wins the
// race with the commit's reply: the hold is in the database, the caller
// sees an error.
type abortAfterCommit struct {
	ledger.Store
	cancel context.CancelFunc
}

func (s abortAfterCommit) Reserve(ctx context.Context, h ledger.HoldRequest) error {
	if err := s.Store.Reserve(ctx, h); err != nil {
		return err
	}
	s.cancel()
	return fmt.Errorf("ledger: reserve: %w", context.Canceled)
}

// lostBeforeCommit is a store whose connection drops before the
// reservation reaches the database: an error just as ambiguous to the
// caller, with no hold behind it.
type lostBeforeCommit struct{ ledger.Store }

func (lostBeforeCommit) Reserve(context.Context, ledger.HoldRequest) error {
	return errors.New("ledger: reserve: read tcp: connection reset by peer")
}

// wantUntouched checks that tenant a is back to a balance of one unit with
// nothing reserved, to the micro-unit, and that the ledger adds up.
func wantUntouched(t *testing.T, s ledger.Store) {
	t.Helper()
	a := account(t, s, "a")
	if a.Balance != ledger.Unit || a.Reserved != 0 || a.Available() != ledger.Unit {
		t.Fatalf("account %+v, want balance and available 1.000000 and nothing reserved", a)
	}
	if r := clean(t, s); r.Holds != 0 {
		t.Fatalf("%d holds left open", r.Holds)
	}
}

// TestReserveAmbiguousOutcomeReleases: a reservation whose outcome the
// gateway cannot know (the commit landed but the reply was lost to a
// cancelled context, or the connection dropped) is released by its key, so
// the tenant's available balance comes back exactly.
func TestReserveAmbiguousOutcomeReleases(t *testing.T) {
	for name, dsn := range bothStores() {
		t.Run(name+"/committed", func(t *testing.T) {
			ctx := context.Background()
			s := open(t, dsn(t))
			defer s.Close()
			fund(t, s, "a", ledger.Unit)
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			l := newLedger(t, abortAfterCommit{Store: s, cancel: cancel}, t.TempDir(), nil)
			defer l.Close(ctx)
			if h, err := l.Reserve(rctx, req("a", "r1", "m", 1000, 500)); !errors.Is(err, context.Canceled) || h != nil {
				t.Fatalf("Reserve = %v, %v; want no hold and an error wrapping context.Canceled", h, err)
			}
			drained(t, l)
			wantUntouched(t, s)
		})
		t.Run(name+"/never-committed", func(t *testing.T) {
			ctx := context.Background()
			s := open(t, dsn(t))
			defer s.Close()
			fund(t, s, "a", ledger.Unit)
			l := newLedger(t, lostBeforeCommit{s}, t.TempDir(), nil)
			defer l.Close(ctx)
			_, err := l.Reserve(ctx, req("a", "r1", "m", 1000, 500))
			if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, billing.ErrInsufficientQuota) {
				t.Fatalf("Reserve over a dropped connection: %v", err)
			}
			drained(t, l)
			// The release of a hold that never existed moves nothing.
			wantUntouched(t, s)
			es, err := s.Entries(ctx, ledger.Filter{TenantID: "a"})
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != 2 || es[1].Kind != ledger.KindRelease || es[1].Amount != 0 {
				t.Fatalf("entries %+v, want the credit and one release of 0", es)
			}
		})
	}
}

// TestReserveClientGoneDuringCommitPostgres: the client disconnects while
// PostgreSQL is committing the reservation. A trigger keeps the hold's
// INSERT waiting on an advisory lock the test holds (a slow commit, made
// deterministic); the test cancels the request's context while the
// statement waits, then lets it commit. No hold may outlive the request.
func TestReserveClientGoneDuringCommitPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgDSN(t)
	s := open(t, dsn)
	defer s.Close()
	fund(t, s, "a", ledger.Unit)
	_, target, err := store.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	gate, err := pgx.Connect(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close(ctx)
	for _, q := range []string{
		`CREATE FUNCTION slow_hold() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NEW; END $$`,
		`CREATE TRIGGER slow_hold BEFORE INSERT ON ledger_holds FOR EACH ROW EXECUTE FUNCTION slow_hold()`,
		`SELECT pg_advisory_lock(4242)`,
	} {
		if _, err := gate.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	l := newLedger(t, s, t.TempDir(), nil)
	defer l.Close(ctx)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		h, err := l.Reserve(rctx, req("a", "r1", "m", 1000, 500))
		if h != nil {
			err = fmt.Errorf("got a hold for a request whose client is gone (err %v)", err)
		}
		done <- err
	}()
	// Wait until the reservation's statement is inside the trigger.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		if err := gate.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reservation never reached the trigger")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel() // the client goes away mid-commit
	if _, err := gate.Exec(ctx, `SELECT pg_advisory_unlock(4242)`); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Reserve after the client left: %v, want an error wrapping context.Canceled", err)
	}
	// Taking the lock back waits until the reservation's transaction has
	// ended on the server, whatever its client saw.
	if _, err := gate.Exec(ctx, `SELECT pg_advisory_lock(4242), pg_advisory_unlock(4242)`); err != nil {
		t.Fatal(err)
	}
	drained(t, l)
	wantUntouched(t, s)
}

// TestCrashReleasesOrphanedHolds SIGKILLs a process holding six
// reservations, three of them settled (journaled, not yet written: the
// batch delay is an hour) and three in flight. The next start on its spool
// charges the three settled exactly and releases the three orphaned holds.
func TestCrashReleasesOrphanedHolds(t *testing.T) {
	if dir := os.Getenv("LEDGER_ORPHAN_SPOOL"); dir != "" {
		orphanHelper(dir, os.Getenv("LEDGER_ORPHAN_DSN"))
		return
	}
	for name, newDSN := range bothStores() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dsn := newDSN(t)
			s := open(t, dsn)
			defer s.Close()
			fund(t, s, "a", ledger.Unit)
			spoolDir := t.TempDir()

			cmd, out := startChild(t, "TestCrashReleasesOrphanedHolds", "LEDGER_ORPHAN_SPOOL="+spoolDir, "LEDGER_ORPHAN_DSN="+dsn)
			line, err := bufio.NewReader(out).ReadString('\n')
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			if line != "ready\n" {
				t.Fatalf("helper said %q (%v)", line, err)
			}
			// Each hold is 1000 prompt + 500 completion tokens at "m": 2000 µ.
			if a := account(t, s, "a"); a.Reserved != 6*2000 || a.Balance != ledger.Unit {
				t.Fatalf("after the crash: %+v, want six holds of 0.002000 and nothing charged", a)
			}

			l := newLedger(t, s, spoolDir, nil)
			drained(t, l)
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			// Three settled at 100 prompt + 50 completion = 200 µ each.
			if a := account(t, s, "a"); a.Reserved != 0 || a.Balance != ledger.Unit-3*200 {
				t.Fatalf("after the restart: %+v, want balance 0.999400 and nothing reserved", a)
			}
			if r := clean(t, s); r.Holds != 0 || r.Entries != 1+6 {
				t.Fatalf("after the restart: %+v, want no holds and 3 debits + 3 releases", r)
			}
			if left, _ := filepath.Glob(filepath.Join(spoolDir, "*.spool")); len(left) != 0 {
				t.Fatalf("spool segments left after the replay: %v", left)
			}
		})
	}
}

func orphanHelper(spoolDir, dsn string) {
	ctx := context.Background()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s, err := ledger.Open(ctx, dsn)
	if err != nil {
		fail(err)
	}
	l, err := ledger.New(s, ledger.Config{Prices: testPrices, SpoolDir: spoolDir, BatchDelay: time.Hour})
	if err != nil {
		fail(err)
	}
	for i := range 6 {
		h, err := l.Reserve(ctx, req("a", fmt.Sprint("o", i), "m", 1000, 500))
		if err != nil {
			fail(err)
		}
		if i%2 == 0 {
			h.Settle(ctx, billing.Usage{PromptTokens: 100, CompletionTokens: 50})
		}
	}
	fmt.Println("ready")
	select {} // in flight until SIGKILL
}
