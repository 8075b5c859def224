package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	stripewebhook "github.com/stripe/stripe-go/v82/webhook"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/billing/webhook"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const (
	stripeOld = "whsec_old_stripe_secret"
	stripeNew = "whsec_new_stripe_secret"
	// The Standard Webhooks spec's test-vector secret.
	stdSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

type env struct {
	srv     *httptest.Server
	store   ledger.Store
	ledger  *ledger.Ledger
	tenant  store.Tenant
	reg     *prometheus.Registry
	logs    *testenv.Buffer
	entries func() []ledger.Entry
}

func setup(t *testing.T, dsn string) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tenant, err := st.CreateTenant(ctx, "acme", billing.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	l, err := ledger.New(ls, ledger.Config{SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(ctx) })
	reg := prometheus.NewRegistry()
	logs := &testenv.Buffer{}
	h, err := webhook.New(webhook.Config{
		StripeSecrets:   []string{stripeOld, stripeNew},
		StandardSecrets: []string{stdSecret},
		// Two Lemon Squeezy signing secrets, the old and the new of a rotation.
		LemonSqueezySecrets: []string{lemonOld, lemonNew},
		MaxBody:             16 << 10, // room for a 10 KiB event id
		Registerer:          reg,
		Logger:              slog.New(slog.NewTextHandler(logs, nil)),
	}, l, st)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/billing/webhooks/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{srv: srv, store: ls, ledger: l, tenant: tenant, reg: reg, logs: logs, entries: func() []ledger.Entry {
		es, err := ls.Entries(ctx, ledger.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}}
}

func (e *env) post(t *testing.T, provider string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/billing/webhooks/"+provider, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Result string }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Result
}

func (e *env) balance(t *testing.T) ledger.Micros {
	t.Helper()
	a, err := e.store.Account(context.Background(), e.tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	return a.Balance
}

func stripeEvent(id, typ, tenant string, object string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"object":"event","type":%q,"data":{"object":%s}}`, id, typ,
		strings.ReplaceAll(object, "TENANT", tenant)))
}

func signStripe(body []byte, secret string, at time.Time) map[string]string {
	sp := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at})
	return map[string]string{"Stripe-Signature": sp.Header}
}

func TestStripe(t *testing.T) {
	e := setup(t, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
	paid := stripeEvent("evt_1", "checkout.session.completed", "acme",
		`{"object":"checkout.session","amount_total":1250,"currency":"usd","payment_status":"paid","metadata":{"tenant":"TENANT"}}`)

	if code, res := e.post(t, "stripe", paid, signStripe(paid, stripeOld, time.Now())); code != 200 || res != "credited" {
		t.Fatalf("checkout: %d %s", code, res)
	}
	if got := e.balance(t); got != 12_500_000 {
		t.Fatalf("balance %s after $12.50, want 12.500000", got)
	}
	// The provider's redelivery (a new timestamp, same event) credits nothing.
	if code, res := e.post(t, "stripe", paid, signStripe(paid, stripeNew, time.Now())); code != 200 || res != "duplicate" {
		t.Fatalf("replay: %d %s", code, res)
	}

	// invoice.paid names the tenant by id; the header carries a stale v1
	// for a retired secret beside the valid one.
	inv := stripeEvent("evt_2", "invoice.paid", e.tenant.ID, `{"object":"invoice","amount_paid":500,"currency":"usd","metadata":{"tenant":"TENANT"}}`)
	hdr := signStripe(inv, stripeNew, time.Now())
	hdr["Stripe-Signature"] += ",v1=" + strings.Repeat("ab", 32)
	if code, res := e.post(t, "stripe", inv, hdr); code != 200 || res != "credited" {
		t.Fatalf("invoice: %d %s", code, res)
	}
	// A partial refund debits only what this event refunded.
	ref := []byte(fmt.Sprintf(`{"id":"evt_3","type":"charge.refunded","data":{"object":{"object":"charge","amount_refunded":300,"currency":"usd","metadata":{"tenant":"acme"}},"previous_attributes":{"amount_refunded":100}}}`))
	if code, res := e.post(t, "stripe", ref, signStripe(ref, stripeOld, time.Now())); code != 200 || res != "debited" {
		t.Fatalf("refund: %d %s", code, res)
	}
	if got := e.balance(t); got != 12_500_000+5_000_000-2_000_000 {
		t.Fatalf("balance %s, want 15.500000", got)
	}

	before := len(e.entries())
	for name, c := range map[string]struct {
		body []byte
		hdr  map[string]string
		code int
		res  string
	}{
		"wrong secret": {paid, signStripe(paid, "whsec_someone_else", time.Now()), 400, "bad_signature"},
		// A minute past the 300 s tolerance either way: every case is signed
		// before the first is sent, and on a loaded machine the sends before
		// this one can take seconds, which would bring +301 s back inside.
		"stale":           {inv, signStripe(inv, stripeOld, time.Now().Add(-360*time.Second)), 400, "bad_signature"},
		"future":          {inv, signStripe(inv, stripeOld, time.Now().Add(360*time.Second)), 400, "bad_signature"},
		"no header":       {inv, nil, 400, "bad_signature"},
		"body altered":    {append(bytes.Clone(inv), ' '), signStripe(inv, stripeOld, time.Now()), 400, "bad_signature"},
		"unknown tenant":  {stripeEvent("evt_4", "invoice.paid", "nobody", `{"amount_paid":100,"currency":"usd","metadata":{"tenant":"TENANT"}}`), nil, 200, "unknown_tenant"},
		"unhandled type":  {stripeEvent("evt_5", "customer.created", "acme", `{"metadata":{"tenant":"TENANT"}}`), nil, 200, "ignored"},
		"unpaid checkout": {stripeEvent("evt_6", "checkout.session.completed", "acme", `{"amount_total":100,"currency":"usd","payment_status":"unpaid","metadata":{"tenant":"TENANT"}}`), nil, 200, "ignored"},
		"other currency":  {stripeEvent("evt_7", "invoice.paid", "acme", `{"amount_paid":100,"currency":"eur","metadata":{"tenant":"TENANT"}}`), nil, 200, "ignored"},
		"not json":        {[]byte("{"), nil, 400, "bad_request"},
		"too large":       {bytes.Repeat([]byte("x"), 17<<10), nil, 413, "bad_request"},
	} {
		hdr := c.hdr
		if hdr == nil && name != "no header" {
			hdr = signStripe(c.body, stripeOld, time.Now())
		}
		if code, res := e.post(t, "stripe", c.body, hdr); code != c.code || res != c.res {
			t.Errorf("%s: %d %s, want %d %s", name, code, res, c.code, c.res)
		}
	}
	if after := len(e.entries()); after != before {
		t.Fatalf("rejected or ignored deliveries wrote %d entries", after-before)
	}
	mf, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if n := counter(mf, "stripe", "bad_signature"); n != 5 {
		t.Fatalf("bad_signature counted %v times, want 5", n)
	}
}

func TestStripeDatabaseDownIsRetryable(t *testing.T) {
	e := setup(t, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
	e.store.Close() // the ledger's database goes away
	paid := stripeEvent("evt_x", "invoice.paid", "acme", `{"amount_paid":100,"currency":"usd","metadata":{"tenant":"TENANT"}}`)
	if code, _ := e.post(t, "stripe", paid, signStripe(paid, stripeOld, time.Now())); code < 500 {
		t.Fatalf("database failure answered %d; the provider would not retry", code)
	}
}

func TestStandardSpecVector(t *testing.T) {
	// From the Standard Webhooks specification's reference libraries.
	body := []byte(`{"test": 2432232314}`)
	key, err := webhook.StandardSecret(stdSecret)
	if err != nil {
		t.Fatal(err)
	}
	err = webhook.VerifyStandard(body, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
		"v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", [][]byte{key}, 5*time.Minute, time.Unix(1614265330, 0))
	if err != nil {
		t.Fatalf("spec test vector rejected: %v", err)
	}
	err = webhook.VerifyStandard(body, "msg_p5jXN8AQM9LWM0D4loKWxJel", "1614265330",
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", [][]byte{key}, 5*time.Minute, time.Unix(1614265330, 0))
	if err == nil {
		t.Fatal("signature accepted for another message id")
	}
}

// sendStandard signs and posts a Standard Webhooks delivery with the
// reference library.
func (e *env) sendStandard(t *testing.T, id string, body []byte, at time.Time) (int, string) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(stdSecret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(id, at, body)
	if err != nil {
		t.Fatal(err)
	}
	return e.post(t, "standard", body, map[string]string{
		"webhook-id": id, "webhook-timestamp": fmt.Sprint(at.Unix()), "webhook-signature": sig,
	})
}

func TestStandard(t *testing.T) {
	e := setup(t, testenv.PG(t).NewDatabase(t))
	send := func(id string, body []byte, at time.Time) (int, string) {
		t.Helper()
		return e.sendStandard(t, id, body, at)
	}
	pay := []byte(`{"type":"payment.succeeded","data":{"tenant":"acme","amount_micros":2500000,"currency":"usd"}}`)
	if code, res := send("msg_1", pay, time.Now()); code != 200 || res != "credited" {
		t.Fatalf("payment: %d %s", code, res)
	}
	if code, res := send("msg_1", pay, time.Now()); code != 200 || res != "duplicate" {
		t.Fatalf("replay: %d %s", code, res)
	}
	refund := []byte(`{"type":"payment.refunded","data":{"tenant":"acme","amount_micros":500000}}`)
	if code, res := send("msg_2", refund, time.Now()); code != 200 || res != "debited" {
		t.Fatalf("refund: %d %s", code, res)
	}
	if code, res := send("msg_3", pay, time.Now().Add(-10*time.Minute)); code != 400 || res != "bad_signature" {
		t.Fatalf("stale: %d %s", code, res)
	}
	if code, res := send("msg_4", []byte(`{"type":"payment.succeeded","data":{"tenant":"acme","amount_micros":-5}}`), time.Now()); code != 400 {
		t.Fatalf("negative amount: %d %s", code, res)
	}
	if got := e.balance(t); got != 2_000_000 {
		t.Fatalf("balance %s, want 2.000000", got)
	}
	if r, err := e.store.Verify(context.Background()); err != nil || !r.OK() {
		t.Fatalf("verify: %+v %v", r, err)
	}
}

func counter(mfs []*dto.MetricFamily, provider, result string) float64 {
	return labelled(mfs, "llmctl_webhook_events_total", map[string]string{"provider": provider, "result": result})
}

// labelled is the value of the counter name with exactly these labels.
func labelled(mfs []*dto.MetricFamily, name string, want map[string]string) float64 {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if maps.Equal(labels, want) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// Signed events the ledger can never take (an id too long for its
// idempotency key, an amount that overflows the balance) are refused for
// good with 400, not 503: a 5xx has the provider retry for days. Nothing is
// credited, each is logged once at WARN with the id cut short, and counted
// by reason. On both databases, whose overflow behaviours differ.
func TestPoisonEventsRefused(t *testing.T) {
	for name, dsn := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db") },
		"postgres": func(t *testing.T) string { return testenv.PG(t).NewDatabase(t) },
	} {
		t.Run(name, func(t *testing.T) { testPoisonEventsRefused(t, dsn(t)) })
	}
}

func testPoisonEventsRefused(t *testing.T, dsn string) {
	e := setup(t, dsn)
	if code, res := e.sendStandard(t, "msg_ok", []byte(`{"type":"payment.succeeded","data":{"tenant":"acme","amount_micros":12500001}}`), time.Now()); code != 200 || res != "credited" {
		t.Fatalf("payment: %d %s", code, res)
	}
	const balance = 12_500_001
	entries := len(e.entries())

	longID := "evt_" + strings.Repeat("x", 10*1024-4) // 10 KiB
	stripeLong := stripeEvent(longID, "invoice.paid", "acme", `{"amount_paid":100,"currency":"usd","metadata":{"tenant":"TENANT"}}`)
	// The most cents centsToMicros takes: 9223372036854770000 micros, over
	// what the balance has room for.
	stripeHuge := stripeEvent("evt_huge", "invoice.paid", "acme", fmt.Sprintf(`{"amount_paid":%d,"currency":"usd","metadata":{"tenant":"TENANT"}}`, int64(math.MaxInt64/10_000)))
	stdHuge := []byte(fmt.Sprintf(`{"type":"payment.succeeded","data":{"tenant":"acme","amount_micros":%d}}`, int64(math.MaxInt64-balance+1)))
	pay := []byte(`{"type":"payment.succeeded","data":{"tenant":"acme","amount_micros":1}}`)
	id248 := "msg_" + strings.Repeat("y", 244)
	deliveries := []struct {
		name string
		send func() (int, string)
	}{
		{"stripe 10 KiB id", func() (int, string) {
			return e.post(t, "stripe", stripeLong, signStripe(stripeLong, stripeOld, time.Now()))
		}},
		{"stripe amount overflows the balance", func() (int, string) {
			return e.post(t, "stripe", stripeHuge, signStripe(stripeHuge, stripeNew, time.Now()))
		}},
		{"standard 10 KiB id", func() (int, string) { return e.sendStandard(t, longID, pay, time.Now()) }},
		{"standard 248-byte id", func() (int, string) { return e.sendStandard(t, id248, pay, time.Now()) }},
		{"standard amount overflows the balance", func() (int, string) { return e.sendStandard(t, "msg_huge", stdHuge, time.Now()) }},
	}
	for round := range 2 { // a redelivery is refused the same way
		for _, d := range deliveries {
			if code, res := d.send(); code != http.StatusBadRequest || res != "rejected" {
				t.Fatalf("round %d, %s: %d %s, want 400 rejected", round, d.name, code, res)
			}
		}
	}
	if got := e.balance(t); got != balance {
		t.Fatalf("balance %s after refused events, want %s", got, ledger.Micros(balance))
	}
	if n := len(e.entries()); n != entries {
		t.Fatalf("refused events wrote %d entries", n-entries)
	}

	logs := e.logs.String()
	if strings.Contains(logs, longID[:100]) {
		t.Fatal("a 10 KiB id was logged beyond its first 64 bytes")
	}
	if strings.Contains(logs, "level=ERROR") {
		t.Fatalf("refused events logged at ERROR:\n%s", logs)
	}
	// Once per delivery: 5 events, each sent twice.
	if n := strings.Count(logs, "level=WARN msg=\"webhook event refused"); n != 2*len(deliveries) {
		t.Fatalf("%d refusal lines, want %d:\n%s", n, 2*len(deliveries), logs)
	}
	if want := longID[:64] + "…(10240 bytes)"; strings.Count(logs, want) != 4 {
		t.Fatalf("the long id is not logged as %q four times:\n%s", want, logs)
	}

	mf, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		provider, reason string
		want             float64
	}{
		{"stripe", "id_too_long", 2}, {"stripe", "amount_overflow", 2},
		{"standard", "id_too_long", 4}, {"standard", "amount_overflow", 2},
	} {
		if got := rejected(mf, c.provider, c.reason); got != c.want {
			t.Errorf("llmctl_webhook_rejected_total{provider=%q,reason=%q} = %v, want %v", c.provider, c.reason, got, c.want)
		}
	}

	// The longest id the ledger can key (247 bytes after "standard:") is
	// credited, exactly.
	if code, res := e.sendStandard(t, id248[:247], pay, time.Now()); code != 200 || res != "credited" {
		t.Fatalf("247-byte id: %d %s", code, res)
	}
	if got := e.balance(t); got != balance+1 {
		t.Fatalf("balance %s, want %s", got, ledger.Micros(balance+1))
	}
	if r, err := e.store.Verify(context.Background()); err != nil || !r.OK() {
		t.Fatalf("verify: %+v %v", r, err)
	}
}

func rejected(mfs []*dto.MetricFamily, provider, reason string) float64 {
	return labelled(mfs, "llmctl_webhook_rejected_total", map[string]string{"provider": provider, "reason": reason})
}
