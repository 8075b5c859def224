package ledgertest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// runOutbox checks the alerts outbox: events written with the ledger
// change that causes them and never without it, one balance.low per
// crossing, payment.credited once per credit, and deliveries leased to one
// sender at a time.
func runOutbox(t *testing.T, open func(t *testing.T) ledger.Store) {
	ctx := context.Background()
	outbox := func(t *testing.T) (ledger.Store, ledger.Outbox) {
		s := open(t)
		o, ok := ledger.OutboxOf(s)
		if !ok {
			t.Fatalf("%T has no outbox", s)
		}
		return s, o
	}
	apply := func(t *testing.T, s ledger.Store, es ...ledger.Entry) {
		t.Helper()
		if _, err := s.Apply(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	events := func(t *testing.T, o ledger.Outbox, typ string) []ledger.Event {
		t.Helper()
		evs, err := o.Events(ctx, typ)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	data := func(t *testing.T, ev ledger.Event) map[string]string {
		t.Helper()
		var m map[string]string
		if err := json.Unmarshal(ev.Payload, &m); err != nil {
			t.Fatalf("payload of %s: %v (%s)", ev.Type, err, ev.Payload)
		}
		return m
	}

	t.Run("OutboxPaymentCreditedOnce", func(t *testing.T) {
		s, o := outbox(t)
		c := credit("stripe:evt_1", "a", 12_345_678)
		apply(t, s, c)
		apply(t, s, c) // a replayed webhook
		apply(t, s, credit("stripe:evt_1", "a", 12_345_678), debit("req", "a", 1))
		evs := events(t, o, ledger.EventPaymentCredited)
		if len(evs) != 1 {
			t.Fatalf("want one payment.credited under replay, got %d", len(evs))
		}
		ev := evs[0]
		if ev.ID != ledger.EventID(ledger.EventPaymentCredited, c.Key) || ev.TenantID != "a" {
			t.Fatalf("event %+v", ev)
		}
		want := map[string]string{"tenant": "a", "entryKey": c.Key, "amount": "12.345678", "reason": "test"}
		if got := data(t, ev); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("payload %v, want %v", got, want)
		}
		if n := len(events(t, o, "")); n != 1 {
			t.Fatalf("debits without a threshold wrote %d events", n)
		}
	})

	t.Run("OutboxBalanceLowOncePerCrossing", func(t *testing.T) {
		s, o := outbox(t)
		o.SetLowBalance(ledger.Unit)
		apply(t, s, credit("pay1", "a", 3*ledger.Unit))
		apply(t, s, debit("d1", "a", 1_500_000)) // 1.5: above
		apply(t, s, debit("d2", "a", 500_000))   // exactly 1.0: not below
		if n := len(events(t, o, ledger.EventBalanceLow)); n != 0 {
			t.Fatalf("balance.low at or above the threshold: %d", n)
		}
		apply(t, s, debit("d3", "a", 1)) // 0.999999: crossed
		apply(t, s, debit("d4", "a", 200_000))
		apply(t, s, debit("d5", "a", 2*ledger.Unit)) // stays low, goes negative
		low := events(t, o, ledger.EventBalanceLow)
		if len(low) != 1 {
			t.Fatalf("want one balance.low while it stays low, got %d", len(low))
		}
		want := map[string]string{"tenant": "a", "entryKey": "d3", "balance": "0.999999", "threshold": "1.000000"}
		if got := data(t, low[0]); fmt.Sprint(got) != fmt.Sprint(want) || low[0].ID != ledger.EventID(ledger.EventBalanceLow, "d3") {
			t.Fatalf("balance.low %s %v, want %v", low[0].ID, got, want)
		}
		// Recovery re-arms: the next crossing sends again.
		apply(t, s, credit("pay2", "a", 5*ledger.Unit)) // 3.799999
		apply(t, s, debit("d6", "a", 3*ledger.Unit))    // 0.799999
		if low = events(t, o, ledger.EventBalanceLow); len(low) != 2 || data(t, low[1])["entryKey"] != "d6" {
			t.Fatalf("after recovery want a second balance.low, got %d", len(low))
		}
		if n := len(events(t, o, ledger.EventPaymentCredited)); n != 2 {
			t.Fatalf("payment.credited: %d", n)
		}
		// A credit and a debit in one batch that end above: nothing.
		apply(t, s, credit("pay3", "a", 10*ledger.Unit), debit("d7", "a", 1))
		if n := len(events(t, o, ledger.EventBalanceLow)); n != 2 {
			t.Fatalf("balance.low while above: %d", n)
		}
	})

	t.Run("OutboxTenantThreshold", func(t *testing.T) {
		s, o := outbox(t)
		o.SetLowBalance(ledger.Unit)
		ten := 10 * ledger.Unit
		zero := ledger.Micros(0)
		if err := o.SetTenantLowBalance(ctx, "b", &ten, t0); err != nil {
			t.Fatal(err)
		}
		if err := o.SetTenantLowBalance(ctx, "off", &zero, t0); err != nil {
			t.Fatal(err)
		}
		neg := ledger.Micros(-1)
		if err := o.SetTenantLowBalance(ctx, "x", &neg, t0); err == nil {
			t.Fatal("a negative threshold was accepted")
		}
		if v, ok, err := o.TenantLowBalance(ctx, "b"); err != nil || !ok || v != ten {
			t.Fatalf("tenant threshold: %s %v %v", v, ok, err)
		}
		if _, ok, err := o.TenantLowBalance(ctx, "a"); err != nil || ok {
			t.Fatalf("tenant without a threshold: %v %v", ok, err)
		}
		for _, tn := range []string{"a", "b", "off"} {
			apply(t, s, credit("pay-"+tn, tn, 20*ledger.Unit))
			apply(t, s, debit("d-"+tn, tn, 15*ledger.Unit)) // 5: below b's 10, above the default 1
			apply(t, s, debit("e-"+tn, tn, 5*ledger.Unit))  // 0: below both
		}
		got := map[string]string{}
		for _, ev := range events(t, o, ledger.EventBalanceLow) {
			got[ev.TenantID] += data(t, ev)["entryKey"] + "@" + data(t, ev)["threshold"]
		}
		if want := "map[a:e-a@1.000000 b:d-b@10.000000]"; fmt.Sprint(got) != want {
			t.Fatalf("balance.low by tenant %v, want %s", got, want)
		}
		if err := o.SetTenantLowBalance(ctx, "b", nil, t0); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := o.TenantLowBalance(ctx, "b"); err != nil || ok {
			t.Fatalf("removed threshold still there: %v %v", ok, err)
		}
	})

	// An Apply that fails writes none of its events: they share its
	// transaction.
	t.Run("OutboxFailedApplyWritesNoEvent", func(t *testing.T) {
		s, o := outbox(t)
		o.SetLowBalance(ledger.Unit)
		apply(t, s, credit("big", "z", ledger.Micros(math.MaxInt64-10)), credit("pay", "a", 2*ledger.Unit))
		before := len(events(t, o, ""))
		_, err := s.Apply(ctx, []ledger.Entry{credit("lost", "a", 5), debit("cross", "a", 2*ledger.Unit), credit("over", "z", 11)})
		if err == nil {
			t.Fatal("an overflowing batch was applied")
		}
		if n := len(events(t, o, "")); n != before {
			t.Fatalf("a failed Apply left %d events", n-before)
		}
		wantAccount(t, s, "a", 2*ledger.Unit, 0)
	})

	t.Run("OutboxDeliveries", func(t *testing.T) {
		s, o := outbox(t)
		apply(t, s, credit("p1", "a", 1), credit("p2", "b", 2))
		now := time.Now()
		if _, err := o.Emit(ctx, ledger.Event{ID: "evt_old", Type: ledger.EventSpoolBacklog, Payload: []byte(`{}`), Time: now.Add(-48 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		isNew, err := o.Emit(ctx, ledger.Event{ID: "evt_k", Type: ledger.EventKeyExpiring, TenantID: "a", Payload: []byte(`{"keyId":"k"}`), Time: now})
		if err != nil || !isNew {
			t.Fatalf("emit: %v %v", isNew, err)
		}
		if isNew, err = o.Emit(ctx, ledger.Event{ID: "evt_k", Type: ledger.EventKeyExpiring, Time: t0}); err != nil || isNew {
			t.Fatalf("emit twice: %v %v", isNew, err)
		}
		routes := []ledger.Route{{Endpoint: "http://all"}, {Endpoint: "http://pay", Types: []string{ledger.EventPaymentCredited}}}
		n, err := o.Dispatch(ctx, routes, now, 24*time.Hour)
		// 3 fresh events to all, 2 credits to pay; the 48 h old one to none.
		if err != nil || n != 5 {
			t.Fatalf("dispatch: %d %v", n, err)
		}
		if n, err = o.Dispatch(ctx, routes, now, 24*time.Hour); err != nil || n != 0 {
			t.Fatalf("dispatch twice: %d %v", n, err)
		}
		got, err := o.Claim(ctx, "http://pay", now, time.Minute, 10)
		if err != nil || len(got) != 2 {
			t.Fatalf("claim: %d %v", len(got), err)
		}
		if d := got[0]; d.Event.Type != ledger.EventPaymentCredited || d.Status != ledger.DeliveryPending || len(d.Event.Payload) == 0 {
			t.Fatalf("claimed %+v", d)
		}
		if again, err := o.Claim(ctx, "http://pay", now, time.Minute, 10); err != nil || len(again) != 0 {
			t.Fatalf("leased deliveries claimed again: %d %v", len(again), err)
		}
		// Released unattempted: claimable at once, attempts unchanged.
		if err := o.Release(ctx, got[1]); err != nil {
			t.Fatal(err)
		}
		if again, err := o.Claim(ctx, "http://pay", now, time.Minute, 10); err != nil || len(again) != 1 || again[0].ID != got[1].ID || again[0].Attempts != 0 {
			t.Fatalf("claim after release: %+v %v", again, err)
		} else {
			got[1] = again[0]
		}
		err = o.Finish(ctx, got[0], ledger.Outcome{Status: ledger.DeliveryDelivered, StatusCode: 204, At: now})
		if err != nil {
			t.Fatal(err)
		}
		err = o.Finish(ctx, got[1], ledger.Outcome{Status: ledger.DeliveryPending, StatusCode: 500, Err: "HTTP 500", Next: now.Add(time.Hour), At: now})
		if err != nil {
			t.Fatal(err)
		}
		// The lease has expired and the attempt is not due yet.
		if again, err := o.Claim(ctx, "http://pay", now.Add(2*time.Minute), time.Minute, 10); err != nil || len(again) != 0 {
			t.Fatalf("claim before the next attempt: %d %v", len(again), err)
		}
		later, err := o.Claim(ctx, "http://pay", now.Add(time.Hour), time.Minute, 10)
		if err != nil || len(later) != 1 || later[0].ID != got[1].ID || later[0].Attempts != 1 || later[0].LastStatus != 500 {
			t.Fatalf("retry claim: %+v %v", later, err)
		}
		// A lost lease: another claim after expiry takes it; the first
		// sender's result is ignored.
		stolen, err := o.Claim(ctx, "http://pay", now.Add(time.Hour+2*time.Minute), time.Minute, 10)
		if err != nil || len(stolen) != 1 {
			t.Fatalf("claim after lease expiry: %d %v", len(stolen), err)
		}
		if err := o.Finish(ctx, later[0], ledger.Outcome{Status: ledger.DeliveryFailed, Err: "x", At: now}); err != nil {
			t.Fatal(err)
		}
		if err := o.Finish(ctx, stolen[0], ledger.Outcome{Status: ledger.DeliveryFailed, StatusCode: 410, Err: "HTTP 410", At: now}); err != nil {
			t.Fatal(err)
		}
		list, err := o.Deliveries(ctx, ledger.DeliveryFilter{})
		if err != nil || len(list) != 5 || list[0].ID < list[4].ID {
			t.Fatalf("deliveries newest first: %d %v", len(list), err)
		}
		byID := map[int64]ledger.Delivery{}
		for _, d := range list {
			byID[d.ID] = d
		}
		if d := byID[got[0].ID]; d.Status != ledger.DeliveryDelivered || d.DeliveredAt == nil || d.LastStatus != 204 || d.Attempts != 1 {
			t.Fatalf("delivered: %+v", d)
		}
		if d := byID[got[1].ID]; d.Status != ledger.DeliveryFailed || d.LastStatus != 410 || d.Attempts != 2 {
			t.Fatalf("failed: %+v", d)
		}
		failed, err := o.Deliveries(ctx, ledger.DeliveryFilter{Status: ledger.DeliveryFailed})
		if err != nil || len(failed) != 1 {
			t.Fatalf("failed filter: %d %v", len(failed), err)
		}
		ofB, err := o.Deliveries(ctx, ledger.DeliveryFilter{TenantID: "b", Limit: 1})
		if err != nil || len(ofB) != 1 || ofB[0].TenantID != "b" {
			t.Fatalf("tenant filter: %+v %v", ofB, err)
		}
		d, err := o.Redeliver(ctx, got[1].ID, now.Add(3*time.Hour))
		if err != nil || d.Status != ledger.DeliveryPending || d.Attempts != 0 {
			t.Fatalf("redeliver: %+v %v", d, err)
		}
		if again, err := o.Claim(ctx, "http://pay", now.Add(3*time.Hour), time.Minute, 10); err != nil || len(again) != 1 || !again[0].WindowStart.Equal(now.Add(3*time.Hour).Truncate(time.Microsecond)) {
			t.Fatalf("claim after redeliver: %+v %v", again, err)
		}
		if _, err := o.Redeliver(ctx, 1<<40, now); err == nil {
			t.Fatal("redeliver of an unknown id")
		}
	})

	// Several senders claiming at once never get the same delivery.
	t.Run("OutboxConcurrentClaims", func(t *testing.T) {
		s, o := outbox(t)
		var es []ledger.Entry
		for i := range 60 {
			es = append(es, credit(fmt.Sprintf("p%d", i), "a", 1))
		}
		apply(t, s, es...)
		now := time.Now()
		if n, err := o.Dispatch(ctx, []ledger.Route{{Endpoint: "http://x"}}, now, time.Hour); err != nil || n != 60 {
			t.Fatalf("dispatch: %d %v", n, err)
		}
		var (
			mu   sync.Mutex
			seen = map[int64]int{}
			wg   sync.WaitGroup
		)
		for range 6 {
			wg.Go(func() {
				for {
					got, err := o.Claim(ctx, "http://x", now, time.Minute, 4)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, d := range got {
						seen[d.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != 60 {
			t.Fatalf("claimed %d distinct deliveries, want 60", len(seen))
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("delivery %d claimed %d times", id, n)
			}
		}
	})
}
