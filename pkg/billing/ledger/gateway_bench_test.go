package ledger_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
)

// BenchmarkGatewayAccounting measures what prepaid accounting adds to a
// request through the gateway: the same non-stream chat completion sent
// one at a time (so latency is not queueing) directly to the backend
// double, through a gateway without a ledger, and through a gateway whose
// Reserver is the ledger on PostgreSQL (reserve round trip + journaled
// settle). Targets are interleaved round by round so load drift on a shared
// box hits all three alike. Run with -benchtime 1x.
func BenchmarkGatewayAccounting(b *testing.B) {
	const rounds, perRound = 30, 50
	ctx := context.Background()
	for range b.N {
		d, err := upstreamdouble.New(upstreamdouble.Options{Name: "double"})
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		dsn := pgDSN(b)
		st, err := store.Open(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		key, err := serve.EnsureAdmin(ctx, st, "")
		if err != nil {
			b.Fatal(err)
		}
		ts, err := st.ListTenants(ctx)
		if err != nil || len(ts) != 1 {
			b.Fatalf("tenants: %v %v", ts, err)
		}
		ls := open(b, dsn)
		defer ls.Close()
		fund(b, ls, ts[0].ID, 1000*ledger.Unit)
		l := newLedger(b, ls, b.TempDir(), func(c *ledger.Config) {
			c.Prices = ledger.Prices{Models: map[string]ledger.Price{"double-model": {Input: 100_000, Output: 300_000}}}
		})
		defer l.Close(ctx)

		timed := &timedReserver{l: l}
		gateway := func(r serve.Reserver) string { return benchGateway(b, st, d.URL(), nil, r) }
		targets := []struct {
			name, url, key string
			lat            []time.Duration
		}{
			{name: "direct", url: d.URL()},
			{name: "gateway", url: gateway(nil), key: key},
			{name: "gateway+ledger", url: gateway(timed), key: key},
		}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		body := []byte(`{"model":"double-model","max_tokens":32,"messages":[{"role":"user","content":"benchmark prompt tokens=16"}]}`)
		do := func(url, key string) time.Duration {
			start := time.Now()
			if _, err := upstreamdouble.PostChat(client, url, key, body); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
		for i := range targets { // warm connections and the key cache
			for range 50 {
				do(targets[i].url, targets[i].key)
			}
		}
		for range rounds {
			for i := range targets {
				for range perRound {
					targets[i].lat = append(targets[i].lat, do(targets[i].url, targets[i].key))
				}
			}
		}
		drained(b, l)
		pct := func(lat []time.Duration, p float64) time.Duration {
			s := slices.Clone(lat)
			slices.Sort(s)
			return s[int(p*float64(len(s)-1))]
		}
		var p50 [3]time.Duration
		for i, tg := range targets {
			p50[i] = pct(tg.lat, 0.5)
			b.Logf("%-15s p50 %8.3f ms  p99 %8.3f ms  (%d sequential requests)", tg.name,
				ms(p50[i]), ms(pct(tg.lat, 0.99)), len(tg.lat))
		}
		b.Logf("added p50: gateway %.3f ms, gateway+ledger %.3f ms; accounting itself adds %.3f ms at p50",
			ms(p50[1]-p50[0]), ms(p50[2]-p50[0]), ms(p50[2]-p50[1]))
		b.Logf("inside that: Reserve p50 %.3f ms, Settle (journal fsync) p50 %.3f ms",
			ms(pct(timed.reserve, 0.5)), ms(pct(timed.settle, 0.5)))
		b.ReportMetric(ms(p50[2]-p50[0]), "added-p50-ms-with-ledger")
		b.ReportMetric(ms(p50[1]-p50[0]), "added-p50-ms-without")
		if r := clean(b, ls); r.Entries < int64(rounds*perRound) {
			b.Fatalf("only %d entries for %d accounted requests", r.Entries, rounds*perRound)
		}
	}
}

// timedReserver records how long the ledger's Reserve and Settle take.
type timedReserver struct {
	l               *ledger.Ledger
	mu              sync.Mutex
	reserve, settle []time.Duration
}

func (t *timedReserver) Reserve(ctx context.Context, r billing.ReserveRequest) (billing.Hold, error) {
	start := time.Now()
	h, err := t.l.Reserve(ctx, r)
	t.mu.Lock()
	t.reserve = append(t.reserve, time.Since(start))
	t.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return timedHold{h, t}, nil
}

type timedHold struct {
	h billing.Hold
	t *timedReserver
}

func (h timedHold) Settle(ctx context.Context, u billing.Usage) {
	start := time.Now()
	h.h.Settle(ctx, u)
	h.t.mu.Lock()
	h.t.settle = append(h.t.settle, time.Since(start))
	h.t.mu.Unlock()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
