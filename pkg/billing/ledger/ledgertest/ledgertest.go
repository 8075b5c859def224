// Package ledgertest is the conformance suite every ledger.Store passes:
// idempotent entries, balances in step with entries, atomic reservations
// under concurrency, hold release and expiry, and drift detection.
package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// Harness gives the suite fresh, migrated, empty stores.
type Harness struct {
	// Open returns a new store over an empty database; the suite closes it.
	Open func(t *testing.T) ledger.Store
	// Exec runs raw SQL on that database (the suite tampers with balances
	// to check that Verify notices). It is given the store Open returned.
	Exec func(t *testing.T, s ledger.Store, sql string) error
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)

func credit(key, tenant string, amount ledger.Micros) ledger.Entry {
	return ledger.Entry{Key: key, TenantID: tenant, Kind: ledger.KindCredit, Amount: amount, Reason: "test", Time: t0}
}

func debit(key, tenant string, amount ledger.Micros) ledger.Entry {
	return ledger.Entry{Key: key, TenantID: tenant, Kind: ledger.KindDebit, Amount: -amount, Model: "m", PromptTokens: 3, CompletionTokens: 4, Time: t0}
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	open := func(t *testing.T) ledger.Store {
		s := h.Open(t)
		t.Cleanup(func() { s.Close() })
		return s
	}
	ctx := context.Background()

	runVouchers(t, open)

	t.Run("CreditIsIdempotent", func(t *testing.T) {
		s := open(t)
		n, err := s.Apply(ctx, []ledger.Entry{credit("pay1", "a", 10*ledger.Unit)})
		mustEq(t, err, n, 1)
		n, err = s.Apply(ctx, []ledger.Entry{credit("pay1", "a", 10*ledger.Unit)})
		mustEq(t, err, n, 0)
		// Two of the same key inside one batch count once.
		n, err = s.Apply(ctx, []ledger.Entry{credit("pay2", "a", ledger.Unit), credit("pay2", "a", ledger.Unit)})
		mustEq(t, err, n, 1)
		wantAccount(t, s, "a", 11*ledger.Unit, 0)
		wantClean(t, s)
	})

	// A balance past int64 is refused whole on every store: PostgreSQL's
	// bigint raises, and SQLite would otherwise turn the sum into a float.
	t.Run("BalanceOverflowRefused", func(t *testing.T) {
		s := open(t)
		top := ledger.Micros(math.MaxInt64 - 10)
		n, err := s.Apply(ctx, []ledger.Entry{credit("big", "a", top)})
		mustEq(t, err, n, 1)
		if n, err := s.Apply(ctx, []ledger.Entry{credit("over", "a", 11)}); err == nil {
			t.Fatalf("a credit past the largest balance was applied (%d entries)", n)
		}
		wantAccount(t, s, "a", top, 0)
		n, err = s.Apply(ctx, []ledger.Entry{credit("fits", "a", 10)})
		mustEq(t, err, n, 1)
		wantAccount(t, s, "a", top+10, 0)
	})

	t.Run("EntriesRoundTrip", func(t *testing.T) {
		s := open(t)
		e := debit("req:1", "a", 1234567)
		e.Reason = "why"
		later := credit("pay", "b", 5)
		later.Time = t0.Add(time.Hour)
		if _, err := s.Apply(ctx, []ledger.Entry{e, later, credit("pay-a", "a", 9)}); err != nil {
			t.Fatal(err)
		}
		all, err := s.Entries(ctx, ledger.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 3 || all[0].Seq >= all[1].Seq {
			t.Fatalf("entries not in insertion order: %+v", all)
		}
		got := all[0]
		got.Seq = 0
		if got != e {
			t.Fatalf("entry round trip:\n got %+v\nwant %+v", got, e)
		}
		a, err := s.Entries(ctx, ledger.Filter{TenantID: "a", Limit: 1})
		if err != nil || len(a) != 1 || a[0].Key != "req:1" {
			t.Fatalf("tenant+limit filter: %+v %v", a, err)
		}
		since, err := s.Entries(ctx, ledger.Filter{Since: t0.Add(time.Minute)})
		if err != nil || len(since) != 1 || since[0].Key != "pay" {
			t.Fatalf("since filter: %+v %v", since, err)
		}
	})

	t.Run("SpendSumsWindowInDatabase", func(t *testing.T) {
		s := open(t)
		at := func(e ledger.Entry, d time.Duration) ledger.Entry { e.Time = t0.Add(d); return e }
		rel := func(key, tenant string, d time.Duration) ledger.Entry {
			return ledger.Entry{Key: key, TenantID: tenant, Kind: ledger.KindRelease, Time: t0.Add(d)}
		}
		es := []ledger.Entry{
			credit("pay-a", "a", 100*ledger.Unit),       // not spend
			at(debit("old", "a", 7), -25*time.Hour),     // before the window
			at(debit("day", "a", 11), -5*time.Hour),     // in the day only
			at(debit("hour", "a", 13), -30*time.Minute), // in the last hour
			rel("rel", "a", -10*time.Minute),            // a request, no money
			at(debit("future", "a", 17), time.Minute),   // after Until
			at(debit("b1", "b", 19), -time.Hour),        // exactly at Recent: recent
			{Key: "adj", TenantID: "b", Kind: ledger.KindAdjustment, Amount: -23, Reason: "x", Time: t0.Add(-2 * time.Hour)}, // not usage
		}
		if _, err := s.Apply(ctx, es); err != nil {
			t.Fatal(err)
		}
		got, err := s.Spend(ctx, ledger.SpendWindow{Since: t0.Add(-24 * time.Hour), Recent: t0.Add(-time.Hour), Until: t0})
		if err != nil {
			t.Fatal(err)
		}
		want := []ledger.Spend{
			{TenantID: "a", Amount: 24, Requests: 3, RecentAmount: 13, RecentRequests: 2},
			{TenantID: "b", Amount: 19, Requests: 1, RecentAmount: 19, RecentRequests: 1},
		}
		if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("spend:\n got %+v\nwant %+v", got, want)
		}
		none, err := s.Spend(ctx, ledger.SpendWindow{Since: t0.Add(time.Hour), Recent: t0.Add(time.Hour), Until: t0.Add(2 * time.Hour)})
		if err != nil || len(none) != 0 {
			t.Fatalf("empty window: %+v %v", none, err)
		}
	})

	// The admin API's entries listing: newest first, a window inclusive at
	// both ends, and pages that continue below a Seq cursor.
	t.Run("EntriesNewestFirstPaged", func(t *testing.T) {
		s := open(t)
		var es []ledger.Entry
		for i := range 5 {
			e := credit(fmt.Sprintf("p%d", i), "a", ledger.Micros(i+1))
			e.Time = t0.Add(time.Duration(i) * time.Minute)
			es = append(es, e)
		}
		es = append(es, credit("other", "b", 1))
		if _, err := s.Apply(ctx, es); err != nil {
			t.Fatal(err)
		}
		keys := func(es []ledger.Entry) (out []string) {
			for _, e := range es {
				out = append(out, e.Key)
			}
			return out
		}
		page, err := s.Entries(ctx, ledger.Filter{TenantID: "a", NewestFirst: true, Limit: 2})
		if err != nil || fmt.Sprint(keys(page)) != "[p4 p3]" {
			t.Fatalf("first page: %v %v", keys(page), err)
		}
		page, err = s.Entries(ctx, ledger.Filter{TenantID: "a", NewestFirst: true, Limit: 2, BeforeSeq: page[1].Seq})
		if err != nil || fmt.Sprint(keys(page)) != "[p2 p1]" {
			t.Fatalf("second page: %v %v", keys(page), err)
		}
		win, err := s.Entries(ctx, ledger.Filter{TenantID: "a", NewestFirst: true, Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)})
		if err != nil || fmt.Sprint(keys(win)) != "[p3 p2 p1]" {
			t.Fatalf("since/until window: %v %v", keys(win), err)
		}
		old, err := s.Entries(ctx, ledger.Filter{Until: t0})
		if err != nil || fmt.Sprint(keys(old)) != "[p0 other]" {
			t.Fatalf("until alone, oldest first: %v %v", keys(old), err)
		}
	})

	// The admin API's spend: one tenant only, split by model.
	t.Run("SpendOfOneTenantByModel", func(t *testing.T) {
		s := open(t)
		m := func(key, tenant, model string, amount ledger.Micros) ledger.Entry {
			e := debit(key, tenant, amount)
			e.Model = model
			return e
		}
		if _, err := s.Apply(ctx, []ledger.Entry{m("1", "a", "x", 3), m("2", "a", "y", 5), m("3", "a", "x", 7), m("4", "b", "x", 11)}); err != nil {
			t.Fatal(err)
		}
		w := ledger.SpendWindow{Since: t0.Add(-time.Hour), Recent: t0, Until: t0, TenantID: "a", ByModel: true}
		got, err := s.Spend(ctx, w)
		want := []ledger.Spend{
			{TenantID: "a", Model: "x", Amount: 10, Requests: 2, RecentAmount: 10, RecentRequests: 2},
			{TenantID: "a", Model: "y", Amount: 5, Requests: 1, RecentAmount: 5, RecentRequests: 1},
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("by model:\n got %+v %v\nwant %+v", got, err, want)
		}
		w.ByModel = false
		got, err = s.Spend(ctx, w)
		if err != nil || len(got) != 1 || got[0] != (ledger.Spend{TenantID: "a", Amount: 15, Requests: 3, RecentAmount: 15, RecentRequests: 3}) {
			t.Fatalf("one tenant: %+v %v", got, err)
		}
	})

	// Spend per API key: each request's debit or release carries the key
	// that made it; credits carry none and are not spend.
	t.Run("SpendOfOneTenantByKey", func(t *testing.T) {
		s := open(t)
		k := func(e ledger.Entry, keyID, model string) ledger.Entry {
			e.KeyID, e.Model = keyID, model
			return e
		}
		rel := ledger.Entry{Key: "5", TenantID: "a", Kind: ledger.KindRelease, KeyID: "k2", Time: t0}
		old := k(debit("6", "a", 123_456_789), "k1", "x")
		old.Time = t0.Add(-30 * time.Minute)
		batch := []ledger.Entry{
			credit("pay", "a", 10*ledger.Unit),
			k(debit("1", "a", 1_000_001), "k1", "x"), k(debit("2", "a", 2), "k2", "x"),
			k(debit("3", "a", 999_999), "k1", "y"), k(debit("4", "b", 11), "k1", "x"),
			rel, old, debit("7", "a", 40),
		}
		if _, err := s.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
		es, err := s.Entries(ctx, ledger.Filter{TenantID: "a"})
		if err != nil || len(es) != 7 || es[0].KeyID != "" || es[1].KeyID != "k1" || es[2].KeyID != "k2" || es[4].KeyID != "k2" {
			t.Fatalf("entries keep their key id: %+v %v", es, err)
		}
		w := ledger.SpendWindow{Since: t0.Add(-time.Hour), Recent: t0.Add(-time.Minute), Until: t0, TenantID: "a", ByKey: true}
		got, err := s.Spend(ctx, w)
		want := []ledger.Spend{
			{TenantID: "a", Amount: 40, Requests: 1, RecentAmount: 40, RecentRequests: 1},
			{TenantID: "a", KeyID: "k1", Amount: 125_456_789, Requests: 3, RecentAmount: 2_000_000, RecentRequests: 2},
			{TenantID: "a", KeyID: "k2", Amount: 2, Requests: 2, RecentAmount: 2, RecentRequests: 2},
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("by key:\n got %+v %v\nwant %+v", got, err, want)
		}
		w.ByModel = true
		got, err = s.Spend(ctx, w)
		want = []ledger.Spend{
			{TenantID: "a", KeyID: "k2", Amount: 0, Requests: 1, RecentAmount: 0, RecentRequests: 1},
			{TenantID: "a", Model: "m", Amount: 40, Requests: 1, RecentAmount: 40, RecentRequests: 1},
			{TenantID: "a", Model: "x", KeyID: "k1", Amount: 124_456_790, Requests: 2, RecentAmount: 1_000_001, RecentRequests: 1},
			{TenantID: "a", Model: "x", KeyID: "k2", Amount: 2, Requests: 1, RecentAmount: 2, RecentRequests: 1},
			{TenantID: "a", Model: "y", KeyID: "k1", Amount: 999_999, Requests: 1, RecentAmount: 999_999, RecentRequests: 1},
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("by model and key:\n got %+v %v\nwant %+v", got, err, want)
		}
		wantClean(t, s)
	})

	// What a charge records: the end user (OpenAI `user`) and the cached
	// prompt tokens, read back as written; an entry written before they
	// existed (migration 00207) reads '' and 0; spend splits by end user.
	t.Run("EndUserAndCachedTokens", func(t *testing.T) {
		s := open(t)
		u := func(e ledger.Entry, user string, cached int64) ledger.Entry {
			e.EndUser, e.CachedPromptTokens = user, cached
			return e
		}
		long := strings.Repeat("u", ledger.MaxEndUser)
		batch := []ledger.Entry{
			credit("pay", "a", 10*ledger.Unit),
			u(debit("1", "a", 1_000_001), "alice", 2), u(debit("2", "a", 7), "bob", 0),
			u(debit("3", "a", 999_999), "alice", 3), u(debit("4", "b", 11), "alice", 1),
			u(debit("5", "a", 40), long, 0), debit("6", "a", 5),
		}
		if _, err := s.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
		// An entry as an older llmctl wrote it: no end_user, no cached column.
		old := fmt.Sprintf(`INSERT INTO ledger_entries (idem_key, tenant_id, kind, amount, model, key_id, prompt_tokens, completion_tokens, reason, created_at)
            VALUES ('old', 'a', 'release', 0, 'm', 'k0', 0, 0, '', %d)`, t0.UnixMicro())
		if err := h.Exec(t, s, old); err != nil {
			t.Fatal(err)
		}
		es, err := s.Entries(ctx, ledger.Filter{TenantID: "a"})
		if err != nil || len(es) != 7 {
			t.Fatalf("entries: %+v %v", es, err)
		}
		if es[1].EndUser != "alice" || es[1].CachedPromptTokens != 2 || es[2].EndUser != "bob" || es[4].EndUser != long ||
			es[5].EndUser != "" || es[6].Key != "old" || es[6].EndUser != "" || es[6].CachedPromptTokens != 0 || es[6].KeyID != "k0" {
			t.Fatalf("entries keep end user and cached tokens: %+v", es)
		}
		w := ledger.SpendWindow{Since: t0.Add(-time.Hour), Recent: t0.Add(-time.Minute), Until: t0, TenantID: "a", ByUser: true}
		got, err := s.Spend(ctx, w)
		want := []ledger.Spend{
			{TenantID: "a", Amount: 5, Requests: 2, RecentAmount: 5, RecentRequests: 2},
			{TenantID: "a", EndUser: "alice", Amount: 2_000_000, Requests: 2, RecentAmount: 2_000_000, RecentRequests: 2},
			{TenantID: "a", EndUser: "bob", Amount: 7, Requests: 1, RecentAmount: 7, RecentRequests: 1},
			{TenantID: "a", EndUser: long, Amount: 40, Requests: 1, RecentAmount: 40, RecentRequests: 1},
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("by user:\n got %+v %v\nwant %+v", got, err, want)
		}
		w.TenantID = ""
		got, err = s.Spend(ctx, w)
		if err != nil || len(got) != 5 || got[4] != (ledger.Spend{TenantID: "b", EndUser: "alice", Amount: 11, Requests: 1, RecentAmount: 11, RecentRequests: 1}) {
			t.Fatalf("every tenant by user: %+v %v", got, err)
		}
		for _, bad := range []ledger.Entry{
			u(debit("x1", "a", 1), long+"x", 0), // end user too long
			u(debit("x2", "a", 1), "", 4),       // more cached than the 3 prompt tokens
			u(debit("x3", "a", 1), "", -1),
		} {
			if _, err := s.Apply(ctx, []ledger.Entry{bad}); !errors.Is(err, ledger.ErrInvalidEntry) {
				t.Fatalf("%+v: %v", bad, err)
			}
		}
		// The raw insert moved no money, so the ledger still adds up.
		wantAccount(t, s, "a", 10*ledger.Unit-2_000_052, 0)
		wantClean(t, s)
	})

	t.Run("InvalidBatchWritesNothing", func(t *testing.T) {
		s := open(t)
		bad := credit("neg", "a", -1)
		if _, err := s.Apply(ctx, []ledger.Entry{credit("ok", "a", 1), bad}); !errors.Is(err, ledger.ErrInvalidEntry) {
			t.Fatalf("want ErrInvalidEntry, got %v", err)
		}
		wantAccount(t, s, "a", 0, 0)
		if es, _ := s.Entries(ctx, ledger.Filter{}); len(es) != 0 {
			t.Fatalf("a rejected batch wrote %d entries", len(es))
		}
	})

	t.Run("ReserveChecksBalance", func(t *testing.T) {
		s := open(t)
		if _, err := s.Apply(ctx, []ledger.Entry{credit("pay", "a", ledger.Unit)}); err != nil {
			t.Fatal(err)
		}
		hold := func(key string, amount, overdraft ledger.Micros) error {
			return s.Reserve(ctx, ledger.HoldRequest{Key: key, TenantID: "a", Amount: amount, Overdraft: overdraft, Time: t0})
		}
		if err := hold("h1", 2*ledger.Unit, 0); !errors.Is(err, billing.ErrInsufficientQuota) {
			t.Fatalf("over balance: want ErrInsufficientQuota, got %v", err)
		}
		if err := hold("h2", ledger.Unit/2, 0); err != nil {
			t.Fatal(err)
		}
		if err := hold("h3", ledger.Unit/2+1, 0); !errors.Is(err, billing.ErrInsufficientQuota) {
			t.Fatalf("over available: want ErrInsufficientQuota, got %v", err)
		}
		if err := hold("h4", ledger.Unit/2+1, 1); err != nil {
			t.Fatalf("within overdraft: %v", err)
		}
		wantAccount(t, s, "a", ledger.Unit, ledger.Unit+1)
		wantClean(t, s)
	})

	t.Run("OverdraftCoversNewTenant", func(t *testing.T) {
		s := open(t)
		if err := s.Reserve(ctx, ledger.HoldRequest{Key: "h", TenantID: "new", Amount: 5, Overdraft: 0, Time: t0}); !errors.Is(err, billing.ErrInsufficientQuota) {
			t.Fatalf("no account, no overdraft: want ErrInsufficientQuota, got %v", err)
		}
		if err := s.Reserve(ctx, ledger.HoldRequest{Key: "h", TenantID: "new", Amount: 5, Overdraft: 10, Time: t0}); err != nil {
			t.Fatal(err)
		}
		wantAccount(t, s, "new", 0, 5)
	})

	t.Run("SettlementReleasesHoldOnce", func(t *testing.T) {
		s := open(t)
		if _, err := s.Apply(ctx, []ledger.Entry{credit("pay", "a", 10*ledger.Unit)}); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"r1", "r2"} {
			if err := s.Reserve(ctx, ledger.HoldRequest{Key: k, TenantID: "a", Amount: 4 * ledger.Unit, Time: t0}); err != nil {
				t.Fatal(err)
			}
		}
		wantAccount(t, s, "a", 10*ledger.Unit, 8*ledger.Unit)
		rel := ledger.Entry{Key: "r2", TenantID: "a", Kind: ledger.KindRelease, Time: t0}
		for range 2 { // the replay changes nothing
			if _, err := s.Apply(ctx, []ledger.Entry{debit("r1", "a", ledger.Unit), rel}); err != nil {
				t.Fatal(err)
			}
			wantAccount(t, s, "a", 9*ledger.Unit, 0)
		}
		wantClean(t, s)
	})

	t.Run("ExpiredHoldThenLateSettlement", func(t *testing.T) {
		s := open(t)
		if _, err := s.Apply(ctx, []ledger.Entry{credit("pay", "a", 10)}); err != nil {
			t.Fatal(err)
		}
		for i, at := range []time.Time{t0, t0.Add(time.Hour)} {
			if err := s.Reserve(ctx, ledger.HoldRequest{Key: fmt.Sprint("h", i), TenantID: "a", Amount: 3, Time: at}); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.ExpireHolds(ctx, t0.Add(time.Minute))
		mustEq(t, err, n, 1)
		wantAccount(t, s, "a", 10, 3)
		// The expired request's settlement still charges, without touching
		// the reservation of the live one.
		if _, err := s.Apply(ctx, []ledger.Entry{debit("h0", "a", 2)}); err != nil {
			t.Fatal(err)
		}
		wantAccount(t, s, "a", 8, 3)
		wantClean(t, s)
	})

	t.Run("HoldCommittedAfterItsReleaseIsSwept", func(t *testing.T) {
		s := open(t)
		if _, err := s.Apply(ctx, []ledger.Entry{credit("pay", "a", 10)}); err != nil {
			t.Fatal(err)
		}
		// A release for a hold that does not exist (yet) moves nothing.
		rel := ledger.Entry{Key: "late", TenantID: "a", Kind: ledger.KindRelease, Time: t0}
		if _, err := s.Apply(ctx, []ledger.Entry{rel}); err != nil {
			t.Fatal(err)
		}
		wantAccount(t, s, "a", 10, 0)
		// Its reservation commits afterwards, beside a live one.
		for _, k := range []string{"late", "live"} {
			if err := s.Reserve(ctx, ledger.HoldRequest{Key: k, TenantID: "a", Amount: 3, Time: t0}); err != nil {
				t.Fatal(err)
			}
		}
		wantAccount(t, s, "a", 10, 6)
		// Nothing is old enough to expire, but the settled key's hold goes.
		n, err := s.ExpireHolds(ctx, t0.Add(-time.Hour))
		mustEq(t, err, n, 1)
		wantAccount(t, s, "a", 10, 3)
		wantClean(t, s)
	})

	t.Run("HoldsListsOlderThan", func(t *testing.T) {
		s := open(t)
		if _, err := s.Apply(ctx, []ledger.Entry{credit("pay", "a", 100)}); err != nil {
			t.Fatal(err)
		}
		for i, age := range []time.Duration{time.Hour, time.Minute, 20 * time.Minute} {
			if err := s.Reserve(ctx, ledger.HoldRequest{Key: fmt.Sprint("h", i), TenantID: "a", Amount: ledger.Micros(1 + i), Time: t0.Add(-age)}); err != nil {
				t.Fatal(err)
			}
		}
		hs, err := s.Holds(ctx, t0.Add(-15*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		want := []ledger.OpenHold{
			{Key: "h0", TenantID: "a", Amount: 1, Created: t0.Add(-time.Hour)},
			{Key: "h2", TenantID: "a", Amount: 3, Created: t0.Add(-20 * time.Minute)},
		}
		if fmt.Sprint(hs) != fmt.Sprint(want) {
			t.Fatalf("holds older than 15m:\n got %+v\nwant %+v", hs, want)
		}
	})

	t.Run("ConcurrentReservationsNeverOversell", func(t *testing.T) {
		s := open(t)
		if _, err := s.Apply(ctx, []ledger.Entry{credit("pay", "a", 100)}); err != nil {
			t.Fatal(err)
		}
		var ok, short atomic.Int64
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.Reserve(ctx, ledger.HoldRequest{Key: fmt.Sprint("h", i), TenantID: "a", Amount: 3, Time: t0})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, billing.ErrInsufficientQuota):
					short.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 33 || short.Load() != 7 {
			t.Fatalf("%d reservations granted, %d refused; want 33 and 7", ok.Load(), short.Load())
		}
		wantAccount(t, s, "a", 100, 99)
	})

	t.Run("ConcurrentBatchesKeepBalancesExact", func(t *testing.T) {
		s := open(t)
		const writers, batches, per, tenants = 6, 10, 40, 7
		keys := map[string]bool{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(w), 1))
				for b := range batches {
					var es []ledger.Entry
					for i := range per {
						tenant := fmt.Sprint("t", r.IntN(tenants))
						// Keys overlap across writers: each counts once.
						key := fmt.Sprintf("k%d-%d-%d", w%3, b, i)
						es = append(es, credit(key, tenant, ledger.Micros(1+r.IntN(1000))))
					}
					if _, err := s.Apply(ctx, es); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, e := range es {
						keys[e.Key] = true
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		r := wantClean(t, s)
		if r.Entries != int64(len(keys)) {
			t.Fatalf("%d entries for %d distinct keys", r.Entries, len(keys))
		}
	})

	t.Run("VerifyFindsDrift", func(t *testing.T) {
		s := open(t)
		if _, err := s.Apply(ctx, []ledger.Entry{credit("pay", "a", 10), credit("pay-b", "b", 10)}); err != nil {
			t.Fatal(err)
		}
		wantClean(t, s)
		if err := h.Exec(t, s, `UPDATE ledger_accounts SET balance = balance + 1 WHERE tenant_id = 'b'`); err != nil {
			t.Fatal(err)
		}
		r, err := s.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK() || len(r.Drifts) != 1 || r.Drifts[0].TenantID != "b" || r.Drifts[0].Balance != 11 || r.Drifts[0].EntrySum != 10 {
			t.Fatalf("drift not reported exactly: %+v", r)
		}
	})

	t.Run("EntriesAreAppendOnly", func(t *testing.T) {
		s := open(t)
		if _, err := s.Apply(ctx, []ledger.Entry{credit("pay", "a", 10)}); err != nil {
			t.Fatal(err)
		}
		if err := h.Exec(t, s, `UPDATE ledger_entries SET amount = 1`); err == nil {
			t.Fatal("an entry could be updated")
		}
		if err := h.Exec(t, s, `DELETE FROM ledger_entries`); err == nil {
			t.Fatal("an entry could be deleted")
		}
		wantAccount(t, s, "a", 10, 0)
	})

	runBudgets(t, open)
	runOutbox(t, open)        // outbox.go
	runBatchSpend(t, h, open) // batch.go
}

func mustEq(t *testing.T, err error, got, want int) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got %d, want %d", got, want)
	}
}

func wantAccount(t *testing.T, s ledger.Store, tenant string, balance, reserved ledger.Micros) {
	t.Helper()
	a, err := s.Account(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	if a.Balance != balance || a.Reserved != reserved {
		t.Fatalf("account %s = balance %s reserved %s; want %s and %s", tenant, a.Balance, a.Reserved, balance, reserved)
	}
}

func wantClean(t *testing.T, s ledger.Store) ledger.Report {
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
