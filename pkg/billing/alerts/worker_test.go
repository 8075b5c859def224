package alerts_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/alerts"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func newSecret(t testing.TB) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// receiver is a real HTTP endpoint that verifies every request with the
// Standard Webhooks library, as a customer's would, and answers with what
// status() says.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	wh     *standardwebhooks.Webhook
	mu     sync.Mutex
	got    []received
	status func(n int) int // n: requests so far, from 1
	delay  time.Duration
}

type received struct {
	id, ts string
	body   map[string]any
}

func newReceiver(t testing.TB, secret string) *receiver {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, wh: wh, status: func(int) int { return http.StatusNoContent }}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		// The worker may run on a fake clock: check the signature, then
		// the timestamp header separately.
		if err := r.wh.VerifyIgnoringTimestamp(raw, req.Header); err != nil {
			t.Errorf("signature: %v", err)
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		var b map[string]any
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Errorf("body: %v", err)
		}
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), b})
		n, delay := len(r.got), r.delay
		r.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-req.Context().Done():
			}
		}
		w.WriteHeader(r.status(n))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func sqliteDSN(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db") }
func pgDSN(t testing.TB) string     { return testenv.PG(t).NewDatabase(t) }

func openLedger(t testing.TB, dsn string) (ledger.Store, ledger.Outbox) {
	t.Helper()
	s, err := ledger.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	o, ok := ledger.OutboxOf(s)
	if !ok {
		t.Fatal("no outbox")
	}
	return s, o
}

func newWorker(t testing.TB, o alerts.Options) *alerts.Worker {
	t.Helper()
	if o.Jitter == nil {
		o.Jitter = func() float64 { return 0.5 } // factor 1: exact backoff
	}
	w, err := alerts.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func credit(key, tenant string, amount ledger.Micros) ledger.Entry {
	return ledger.Entry{Key: key, TenantID: tenant, Kind: ledger.KindCredit, Amount: amount, Reason: "stripe", Time: time.Now()}
}

func step(t testing.TB, w *alerts.Worker) {
	t.Helper()
	if err := w.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func deliveries(t testing.TB, o ledger.Outbox) []ledger.Delivery {
	t.Helper()
	ds, err := o.Deliveries(context.Background(), ledger.DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// A balance.low and a payment.credited arrive signed, with Standard
// Webhooks headers and webhook-id = event id, on both databases.
func TestDeliverSigned(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"SQLite": sqliteDSN, "Postgres": pgDSN} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			secret := newSecret(t)
			rcv := newReceiver(t, secret)
			s, o := openLedger(t, dsn(t))
			cfg := alerts.Config{LowBalance: "1.00", Endpoints: []alerts.Endpoint{{URL: rcv.srv.URL, Secret: secret}}}
			low, _ := cfg.LowBalanceMicros()
			o.SetLowBalance(low)
			if _, err := s.Apply(ctx, []ledger.Entry{credit("pay:1", "acme", 2*ledger.Unit)}); err != nil {
				t.Fatal(err)
			}
			debit := ledger.Entry{Key: "charge:1", TenantID: "acme", Kind: ledger.KindDebit, Amount: -1_500_000, Time: time.Now()}
			if _, err := s.Apply(ctx, []ledger.Entry{debit}); err != nil {
				t.Fatal(err)
			}
			w := newWorker(t, alerts.Options{Config: cfg, Outbox: o})
			step(t, w)
			got := rcv.requests()
			if len(got) != 2 {
				t.Fatalf("receiver got %d requests, want 2", len(got))
			}
			byType := map[string]received{}
			for _, r := range got {
				byType[r.body["type"].(string)] = r
				if ts, err := strconv.ParseInt(r.ts, 10, 64); err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
					t.Fatalf("webhook-timestamp %q", r.ts)
				}
			}
			pay := byType[ledger.EventPaymentCredited]
			if pay.id != ledger.EventID(ledger.EventPaymentCredited, "pay:1") {
				t.Fatalf("webhook-id %q is not the event id", pay.id)
			}
			if data := pay.body["data"].(map[string]any); data["amount"] != "2.000000" || data["tenant"] != "acme" {
				t.Fatalf("payment.credited data %v", data)
			}
			lowEv := byType[ledger.EventBalanceLow]
			if data, _ := lowEv.body["data"].(map[string]any); data["balance"] != "0.500000" || data["threshold"] != "1.000000" {
				t.Fatalf("balance.low data %v", lowEv.body)
			}
			for _, d := range deliveries(t, o) {
				if d.Status != ledger.DeliveryDelivered || d.LastStatus != http.StatusNoContent || d.Attempts != 1 || d.DeliveredAt == nil {
					t.Fatalf("delivery %+v", d)
				}
			}
			step(t, w)
			if n := len(rcv.requests()); n != 2 {
				t.Fatalf("delivered events sent again: %d requests", n)
			}
		})
	}
}

// 500s and timeouts are retried with exponential backoff (5 s, 10 s, ...)
// until a 2xx; past the retry window the delivery fails, and redeliver
// sends it again.
func TestRetryBackoffFailRedeliver(t *testing.T) {
	ctx := context.Background()
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	fails := 3
	rcv.status = func(n int) int {
		switch {
		case n == 2:
			return http.StatusOK // answered after the 200 ms timeout: not a success
		case n <= fails:
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	s, o := openLedger(t, sqliteDSN(t))
	if _, err := s.Apply(ctx, []ledger.Entry{credit("pay:1", "acme", ledger.Unit)}); err != nil {
		t.Fatal(err)
	}
	clk := testenv.NewClock(time.Now())
	reg := prometheus.NewRegistry()
	w := newWorker(t, alerts.Options{Config: alerts.Config{Endpoints: []alerts.Endpoint{{URL: rcv.srv.URL, Secret: secret}}},
		Outbox: o, Now: clk.Now, Timeout: 200 * time.Millisecond, RetryWindow: time.Minute, Registerer: reg})
	one := func() ledger.Delivery {
		ds := deliveries(t, o)
		if len(ds) != 1 {
			t.Fatalf("%d deliveries", len(ds))
		}
		return ds[0]
	}
	step(t, w) // attempt 1: 500
	d := one()
	if d.Status != ledger.DeliveryPending || d.Attempts != 1 || d.LastStatus != 500 || !strings.Contains(d.LastError, "500") {
		t.Fatalf("after a 500: %+v", d)
	}
	if !d.NextAttempt.Equal(clk.Now().Add(5 * time.Second).Truncate(time.Microsecond)) {
		t.Fatalf("first retry at %s, want 5 s after %s", d.NextAttempt, clk.Now())
	}
	clk.Add(4 * time.Second)
	step(t, w)
	if n := len(rcv.requests()); n != 1 {
		t.Fatalf("retried before the backoff: %d requests", n)
	}
	rcv.mu.Lock()
	rcv.delay = time.Second
	rcv.mu.Unlock()
	clk.Add(time.Second)
	step(t, w) // attempt 2: times out
	rcv.mu.Lock()
	rcv.delay = 0
	rcv.mu.Unlock()
	d = one()
	if d.Attempts != 2 || d.LastStatus != 0 || !strings.Contains(d.LastError, "deadline") && !strings.Contains(d.LastError, "Timeout") {
		t.Fatalf("after a timeout: %+v", d)
	}
	if want := clk.Now().Add(10 * time.Second).Truncate(time.Microsecond); !d.NextAttempt.Equal(want) {
		t.Fatalf("second retry at %s, want %s", d.NextAttempt, want)
	}
	clk.Add(10 * time.Second)
	step(t, w) // attempt 3: 500, next in 20 s
	clk.Add(20 * time.Second)
	step(t, w) // attempt 4: 200
	d = one()
	if d.Status != ledger.DeliveryDelivered || d.Attempts != 4 || d.LastStatus != 200 {
		t.Fatalf("after recovery: %+v", d)
	}
	ids := map[string]bool{}
	for _, r := range rcv.requests() {
		ids[r.id] = true
	}
	if len(ids) != 1 {
		t.Fatalf("retries changed the webhook-id: %v", ids)
	}

	// A receiver that never recovers: failed once the window is over.
	fails = 1 << 30
	if _, err := s.Apply(ctx, []ledger.Entry{credit("pay:2", "acme", ledger.Unit)}); err != nil {
		t.Fatal(err)
	}
	var failed ledger.Delivery
	for range 20 {
		clk.Add(time.Minute)
		step(t, w)
		fs, err := o.Deliveries(ctx, ledger.DeliveryFilter{Status: ledger.DeliveryFailed})
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) == 1 {
			failed = fs[0]
			break
		}
	}
	if failed.ID == 0 || failed.Attempts < 2 || failed.LastStatus != 500 {
		t.Fatalf("want a failed delivery after the retry window, got %+v", failed)
	}
	before := len(rcv.requests())
	clk.Add(time.Hour)
	step(t, w)
	if len(rcv.requests()) != before {
		t.Fatal("a failed delivery was retried")
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if got := attemptsMetric(t, reg); got["failed"] != 1 || got["delivered"] != 1 || got["retry"] < 4 {
		t.Fatalf("llmctl_alert_attempts_total %v", got)
	}
	fails = 0
	if _, err := o.Redeliver(ctx, failed.ID, clk.Now()); err != nil {
		t.Fatal(err)
	}
	step(t, w)
	ds, err := o.Deliveries(ctx, ledger.DeliveryFilter{Status: ledger.DeliveryDelivered})
	if err != nil || len(ds) != 2 || len(rcv.requests()) != before+1 {
		t.Fatalf("after redeliver: %d delivered, %d requests (%v)", len(ds), len(rcv.requests())-before, err)
	}
}

// Deliveries are rows: a worker that stops while the receiver is down
// leaves them pending, and a new worker on a reopened database sends them.
func TestRestartResumes(t *testing.T) {
	ctx := context.Background()
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	down := true
	rcv.status = func(int) int {
		if down {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	dsn := sqliteDSN(t)
	clk := testenv.NewClock(time.Now())
	cfg := alerts.Config{Endpoints: []alerts.Endpoint{{URL: rcv.srv.URL, Secret: secret}}}
	s, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := ledger.OutboxOf(s)
	for i := range 5 {
		if _, err := s.Apply(ctx, []ledger.Entry{credit("pay:"+strconv.Itoa(i), "acme", ledger.Unit)}); err != nil {
			t.Fatal(err)
		}
	}
	step(t, newWorker(t, alerts.Options{Config: cfg, Outbox: o, Now: clk.Now}))
	// A receiver that is down costs one attempt per round: the rest of the
	// batch is released unattempted.
	if n := len(rcv.requests()); n != 1 {
		t.Fatalf("%d attempts against a receiver that is down, want 1", n)
	}
	s.Close()

	down = false
	clk.Add(time.Minute)
	_, o2 := openLedger(t, dsn)
	step(t, newWorker(t, alerts.Options{Config: cfg, Outbox: o2, Now: clk.Now}))
	ds := deliveries(t, o2)
	attempts := 0
	for _, d := range ds {
		if d.Status != ledger.DeliveryDelivered {
			t.Fatalf("after restart: %+v", d)
		}
		attempts += d.Attempts
	}
	if len(ds) != 5 || len(rcv.requests()) != 6 || attempts != 6 {
		t.Fatalf("%d deliveries, %d requests, %d attempts recorded", len(ds), len(rcv.requests()), attempts)
	}
}

// A redirect is not followed: the signed event goes to the configured URL
// only.
func TestRedirectNotFollowed(t *testing.T) {
	ctx := context.Background()
	secret := newSecret(t)
	elsewhere := newReceiver(t, secret)
	redirect := httptest.NewServer(http.RedirectHandler(elsewhere.srv.URL, http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	s, o := openLedger(t, sqliteDSN(t))
	if _, err := s.Apply(ctx, []ledger.Entry{credit("pay:1", "acme", ledger.Unit)}); err != nil {
		t.Fatal(err)
	}
	step(t, newWorker(t, alerts.Options{Config: alerts.Config{Endpoints: []alerts.Endpoint{{URL: redirect.URL, Secret: secret}}}, Outbox: o}))
	if n := len(elsewhere.requests()); n != 0 {
		t.Fatalf("redirect followed: %d requests elsewhere", n)
	}
	if d := deliveries(t, o)[0]; d.Status != ledger.DeliveryPending || d.LastStatus != http.StatusTemporaryRedirect {
		t.Fatalf("redirect: %+v", d)
	}
}

// key.expiring once per key and expiry; spool.backlog once per crossing;
// an endpoint's events filter.
func TestKeyExpiringAndBacklog(t *testing.T) {
	ctx := context.Background()
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	dsn := sqliteDSN(t)
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, o := openLedger(t, dsn)
	if _, err := st.CreateTenant(ctx, "acme", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	soon, late := time.Now().Add(3*24*time.Hour), time.Now().Add(30*24*time.Hour)
	k1, _, err := st.CreateKey(ctx, store.NewKey{Tenant: "acme", ExpiresAt: &soon})
	if err != nil {
		t.Fatal(err)
	}
	for _, nk := range []store.NewKey{{Tenant: "acme", ExpiresAt: &late}, {Tenant: "acme"}} {
		if _, _, err := st.CreateKey(ctx, nk); err != nil {
			t.Fatal(err)
		}
	}
	clk := testenv.NewClock(time.Now())
	depth, age := 0, time.Duration(0)
	cfg := alerts.Config{Endpoints: []alerts.Endpoint{{URL: rcv.srv.URL, Secret: secret, Events: []string{ledger.EventKeyExpiring, ledger.EventSpoolBacklog}}}}
	w := newWorker(t, alerts.Options{Config: cfg, Outbox: o, Keys: st, Now: clk.Now, Instance: "gw-1",
		Backlog: func() (int, time.Duration) { return depth, age }, BacklogSize: 100, BacklogAge: time.Minute})
	if _, err := o.Emit(ctx, ledger.Event{ID: "evt_other", Type: ledger.EventPaymentCredited, Time: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	step(t, w)
	depth = 150
	step(t, w)
	clk.Add(11 * time.Minute) // a second key scan
	depth = 500
	step(t, w) // still high: nothing new
	depth, age = 0, 0
	step(t, w)
	age = 2 * time.Minute
	step(t, w) // a second crossing
	types := map[string]int{}
	for _, r := range rcv.requests() {
		types[r.body["type"].(string)]++
		if r.body["type"] == ledger.EventKeyExpiring && r.body["data"].(map[string]any)["keyId"] != k1.ID {
			t.Fatalf("key.expiring for %v", r.body)
		}
	}
	if types[ledger.EventKeyExpiring] != 1 || types[ledger.EventSpoolBacklog] != 2 || len(types) != 2 {
		t.Fatalf("events by type %v", types)
	}
}

func TestConfigValidate(t *testing.T) {
	good := newSecret(t)
	for _, tc := range []struct {
		cfg  alerts.Config
		want string
	}{
		{alerts.Config{LowBalance: "1.00", Endpoints: []alerts.Endpoint{{URL: "https://x.example/h", Secret: good}}}, ""},
		{alerts.Config{LowBalance: "abc"}, "alerts.lowBalance"},
		{alerts.Config{LowBalance: "-1"}, "must not be negative"},
		{alerts.Config{Endpoints: []alerts.Endpoint{{URL: "ftp://x", Secret: good}}}, "endpoints[0].url"},
		{alerts.Config{Endpoints: []alerts.Endpoint{{URL: "https://u:p@x.example", Secret: good}}}, "credentials"},
		{alerts.Config{Endpoints: []alerts.Endpoint{{URL: "https://x.example"}}}, "secret: required"},
		{alerts.Config{Endpoints: []alerts.Endpoint{{URL: "https://x.example", Secret: "whsec_c2hvcnQ="}}}, "not a Standard Webhooks secret"},
		{alerts.Config{Endpoints: []alerts.Endpoint{{URL: "https://x.example", Secret: "hunter2hunter2hunter2hunter2"}}}, "not a Standard Webhooks secret"},
		{alerts.Config{Endpoints: []alerts.Endpoint{{URL: "https://x.example", SecretEnv: "NOPE"}}}, "NOPE is not set"},
		{alerts.Config{Endpoints: []alerts.Endpoint{{URL: "https://x.example", Secret: good, Events: []string{"balance.lo"}}}}, `unknown event "balance.lo"`},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		case err != nil && (strings.Contains(err.Error(), good) || strings.Contains(err.Error(), "hunter2")):
			t.Errorf("error shows the secret: %v", err)
		}
	}
	c := alerts.Config{Endpoints: []alerts.Endpoint{{URL: "https://x.example", SecretEnv: "S"}}}
	c.Resolve(func(k string) (string, bool) { return good, k == "S" })
	if err := c.Validate(); err != nil {
		t.Fatalf("secretEnv: %v", err)
	}
}

// attemptsMetric reads llmctl_alert_attempts_total by result.
func attemptsMetric(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "llmctl_alert_attempts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// A shutdown in the middle of an attempt neither counts it nor leaves the
// delivery leased: the next gateway sends it at once.
func TestShutdownReleases(t *testing.T) {
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	rcv.delay = 5 * time.Second
	s, o := openLedger(t, sqliteDSN(t))
	if _, err := s.Apply(context.Background(), []ledger.Entry{credit("pay:1", "acme", ledger.Unit)}); err != nil {
		t.Fatal(err)
	}
	w := newWorker(t, alerts.Options{Config: alerts.Config{Endpoints: []alerts.Endpoint{{URL: rcv.srv.URL, Secret: secret}}}, Outbox: o})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for len(rcv.requests()) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	_ = w.Step(ctx)
	d := deliveries(t, o)[0]
	if d.Status != ledger.DeliveryPending || d.Attempts != 0 {
		t.Fatalf("after shutdown mid-attempt: %+v", d)
	}
	got, err := o.Claim(context.Background(), rcv.srv.URL, time.Now(), time.Minute, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("still leased after shutdown: %d %v", len(got), err)
	}
}
