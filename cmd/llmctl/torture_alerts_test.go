package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

// alertSecret signs the alerts the gateways send (32 bytes, base64).
const alertSecret = "whsec_YWxlcnRzLXRvcnR1cmUtc2lnbmluZy1zZWNyZXQtMzI="

// fleet is several `llmctl serve` replicas, killed when the test ends.
type fleet struct {
	t    *testing.T
	bin  string
	args func(i int) []string
	logw io.Writer
	mu   sync.Mutex
	gws  []*gatewayProc
}

func startFleet(t *testing.T, bin string, n int, args func(i int) []string, logw io.Writer) *fleet {
	t.Helper()
	f := &fleet{t: t, bin: bin, args: args, logw: logw, gws: make([]*gatewayProc, n)}
	t.Cleanup(func() {
		for _, g := range f.all() {
			_ = g.cmd.Process.Kill()
		}
	})
	for i := range n {
		f.restart(i)
	}
	return f
}

// url is replica i's API base URL (changed by a restart).
func (f *fleet) url(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gws[i].url
}

func (f *fleet) all() []*gatewayProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*gatewayProc(nil), f.gws...)
}

// kill SIGKILLs replica i and waits for it to exit.
func (f *fleet) kill(i int) {
	g := f.all()[i]
	_ = g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.done
}

// restart starts replica i (again) with its arguments.
func (f *fleet) restart(i int) {
	g := startGateway(f.t, f.bin, f.args(i), f.logw)
	f.mu.Lock()
	f.gws[i] = g
	f.mu.Unlock()
}

// gatewayLog is where torture gateways write their logs; when the test
// fails its tail is printed, and the whole file copied to
// LLMCTL_TORTURE_LOG if set.
func gatewayLog(t *testing.T, dir string) *os.File {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, "gateways.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer logf.Close()
		if !t.Failed() {
			return
		}
		full, _ := os.ReadFile(logf.Name())
		tail := full
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		t.Logf("gateway logs (tail):\n%s", tail)
		if p := os.Getenv("LLMCTL_TORTURE_LOG"); p != "" {
			_ = os.WriteFile(p, full, 0o600)
		}
	})
	return logf
}

// alertReceiver is a customer's endpoint: it verifies every request with
// the Standard Webhooks library and counts deliveries per webhook-id (a
// real receiver dedupes by it). kill and start take it down and up on the
// same address.
type alertReceiver struct {
	t    *testing.T
	addr string
	wh   *standardwebhooks.Webhook
	mu   sync.Mutex
	ids  map[string]int
	srv  *http.Server
	bad  atomic.Int64
}

func (r *alertReceiver) start() {
	l, err := net.Listen("tcp", r.addr)
	for i := 0; err != nil && i < 50; i++ { // the old socket may linger a moment
		time.Sleep(100 * time.Millisecond)
		l, err = net.Listen("tcp", r.addr)
	}
	if err != nil {
		r.t.Fatalf("receiver listen: %v", err)
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := r.wh.Verify(body, req.Header); err != nil {
			r.bad.Add(1)
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.ids[req.Header.Get("webhook-id")]++
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = r.srv.Serve(l) }()
}

// kill drops the listener and every open connection at once.
func (r *alertReceiver) kill() { _ = r.srv.Close() }

func (r *alertReceiver) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.ids))
	for k, v := range r.ids {
		out[k] = v
	}
	return out
}

// TestAlertsTorture: two `llmctl serve` replicas on one PostgreSQL write
// payment.credited (Standard Webhooks payments) and balance.low (charges
// crossing the threshold) while the alerts receiver is down for 30 s
// (LLMCTL_TORTURE_ALERTS_OUTAGE) and one gateway is SIGKILLed and
// restarted. Afterwards every outbox event has reached the receiver, each
// counted once by webhook-id, and the CLI reads and redelivers them.
func TestAlertsTorture(t *testing.T) {
	if testing.Short() {
		t.Skip("torture test skipped in -short mode")
	}
	outage := 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("LLMCTL_TORTURE_ALERTS_OUTAGE")); err == nil && d > 0 {
		outage = d
	}
	const (
		nTenants  = 6
		nPayments = 120
		gateways  = 2
	)
	ctx := context.Background()
	dsn, bin, double, st, ls := tortureDeps(t)
	ob, _ := ledger.OutboxOf(ls)
	type tenant struct{ id, name, key string }
	var tenants []tenant
	for i := range nTenants {
		tn, err := st.CreateTenant(ctx, fmt.Sprintf("tenant%02d", i), billing.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		_, key, err := st.CreateKey(ctx, store.NewKey{Tenant: tn.ID})
		if err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, tenant{tn.ID, tn.Name, key})
		// 1.00 each: ten 5-token charges at 0.01 per token reach the
		// 0.50 threshold, the eleventh crosses it.
		if _, err := ls.Apply(ctx, []ledger.Entry{{Key: "fund:" + tn.ID, TenantID: tn.ID, Kind: ledger.KindCredit,
			Amount: ledger.Unit, Time: time.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	admT, err := st.CreateTenant(ctx, "ops", billing.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	_, adminKey, err := st.CreateKey(ctx, store.NewKey{Tenant: admT.ID, Role: billing.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}

	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	wh, err := standardwebhooks.NewWebhook(alertSecret)
	if err != nil {
		t.Fatal(err)
	}
	rcv := &alertReceiver{t: t, addr: fmt.Sprintf("127.0.0.1:%d", port), wh: wh, ids: map[string]int{}}
	rcv.start()
	defer func() { rcv.kill() }()

	dir := t.TempDir()
	prices := filepath.Join(dir, "prices.yaml")
	if err := os.WriteFile(prices, []byte("models:\n  m: {input: 0, output: 10000000000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logf := gatewayLog(t, dir)
	args := func(i int) []string {
		return []string{"serve", "--db", dsn, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--log-level", "warn",
			"--backend", "d=" + double.URL(), "--prices", prices, "--spool-dir", filepath.Join(dir, fmt.Sprint("spool", i)),
			"--standard-webhook-secret", standardSecret,
			"--alerts-webhook-url", "http://" + rcv.addr + "/hooks/llmctl", "--alerts-webhook-secret", alertSecret, "--alerts-low-balance", "0.50"}
	}
	gws := startFleet(t, bin, gateways, args, logf)
	gatewayURL := func(i int) string { return gws.url(i % gateways) }

	client := &http.Client{Timeout: 30 * time.Second}
	post := func(req *http.Request) int {
		resp, err := client.Do(req)
		if err != nil {
			return -1
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	signer, err := standardwebhooks.NewWebhook(standardSecret)
	if err != nil {
		t.Fatal(err)
	}
	// pay delivers one payment, retried like a provider until accepted.
	pay := func(j int) {
		body := []byte(fmt.Sprintf(`{"type":"payment.succeeded","data":{"tenant":%q,"amount_micros":%d}}`, tenants[j%nTenants].id, 1+j%7))
		id := fmt.Sprint("msg_alerts_", j)
		for attempt := 0; attempt < 200; attempt++ {
			now := time.Now()
			sig, _ := signer.Sign(id, now, body)
			req, _ := http.NewRequest(http.MethodPost, gatewayURL(j+attempt)+"/v1/billing/webhooks/standard", bytes.NewReader(body))
			req.Header.Set("webhook-id", id)
			req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
			req.Header.Set("webhook-signature", sig)
			if post(req) == http.StatusOK {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("payment %s never accepted", id)
	}
	// spend makes 5-token charges for a tenant: 0.05 each.
	spend := func(tn, n int) {
		for i := 0; i < n; i++ {
			body := `{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hello tokens=5"}]}`
			req, _ := http.NewRequest(http.MethodPost, gatewayURL(tn+i)+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tenants[tn].key)
			if s := post(req); s != http.StatusOK {
				time.Sleep(100 * time.Millisecond) // a restarting gateway; charges need not all land
			}
		}
	}
	var wg sync.WaitGroup
	load := func(from, to int) {
		for j := from; j < to; j++ {
			wg.Go(func() { pay(j) })
		}
		for tn := range nTenants {
			wg.Go(func() { spend(tn, 6) })
		}
		wg.Wait()
	}

	load(0, nPayments/2) // receiver up
	rcv.kill()
	down := time.Now()
	t.Logf("receiver killed; %d ids so far", len(rcv.counts()))
	load(nPayments/2, nPayments) // receiver down: balance.low crossings and payments
	gws.kill(0)
	gws.restart(0)
	t.Logf("gateway 0 SIGKILLed and restarted")
	time.Sleep(time.Until(down.Add(outage)))
	rcv.start()
	t.Logf("receiver back after %s", time.Since(down).Round(time.Second))

	// Wait until every event has been dispatched and every delivery is done.
	var events []ledger.Event
	deadline := time.Now().Add(3 * time.Minute)
	for {
		events, err = ob.Events(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		pending, err := ob.Deliveries(ctx, ledger.DeliveryFilter{Status: ledger.DeliveryPending})
		if err != nil {
			t.Fatal(err)
		}
		all, err := ob.Deliveries(ctx, ledger.DeliveryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) == 0 && len(all) == len(events) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d events, %d deliveries, %d pending", time.Since(down).Round(time.Second), len(events), len(all), len(pending))
		}
		time.Sleep(time.Second)
	}
	got := rcv.counts()
	types, dups := map[string]int{}, 0
	for _, ev := range events {
		types[ev.Type]++
		switch n := got[ev.ID]; {
		case n == 0:
			t.Errorf("event %s (%s) never reached the receiver", ev.ID, ev.Type)
		case n > 1:
			dups += n - 1 // sent again after a lost answer: the receiver dedupes
		}
	}
	if len(got) != len(events) {
		t.Errorf("receiver has %d distinct ids, the outbox %d events", len(got), len(events))
	}
	if rcv.bad.Load() != 0 {
		t.Errorf("%d requests failed signature verification", rcv.bad.Load())
	}
	// Funding, the payments, and at least one crossing per tenant.
	if types[ledger.EventPaymentCredited] != nTenants+nPayments || types[ledger.EventBalanceLow] < nTenants {
		t.Errorf("events by type %v, want %d payment.credited and at least %d balance.low", types, nTenants+nPayments, nTenants)
	}
	failed, err := ob.Deliveries(ctx, ledger.DeliveryFilter{Status: ledger.DeliveryFailed})
	if err != nil || len(failed) != 0 {
		t.Errorf("failed deliveries: %d %v", len(failed), err)
	}
	t.Logf("%d events (%v) delivered to %d distinct ids; %d duplicate sends deduped by id; done %s after the outage began",
		len(events), types, len(got), dups, time.Since(down).Round(time.Second))

	// The CLI on both paths: the log from --db, a redeliver and a tenant
	// threshold through the admin API.
	run := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("llmctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	var listed []adminclient.Delivery
	if err := json.Unmarshal(run("alerts", "deliveries", "--db", dsn, "--limit", "1000", "-o", "json"), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != len(events) || listed[0].Status != "delivered" || listed[0].LastStatusCode != http.StatusNoContent {
		t.Fatalf("alerts deliveries --db: %d rows, first %+v", len(listed), listed[0])
	}
	server := gatewayURL(1)
	before := rcv.counts()[listed[0].EventID]
	out := run("alerts", "redeliver", strconv.FormatInt(listed[0].ID, 10), "--server", server, "--api-key", adminKey)
	if !strings.Contains(string(out), "pending again") {
		t.Fatalf("redeliver: %s", out)
	}
	for i := 0; rcv.counts()[listed[0].EventID] == before; i++ {
		if i > 100 {
			t.Fatal("a redelivered event did not arrive again")
		}
		time.Sleep(100 * time.Millisecond)
	}
	out = run("alerts", "threshold", tenants[0].name, "--low-balance", "2", "--server", server, "--api-key", adminKey)
	if !strings.Contains(string(out), "below 2.000000 (its own threshold)") {
		t.Fatalf("threshold: %s", out)
	}
	if v, own, err := ob.TenantLowBalance(ctx, tenants[0].id); err != nil || !own || v != 2*ledger.Unit {
		t.Fatalf("threshold stored: %s %v %v", v, own, err)
	}
}
