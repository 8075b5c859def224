package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
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
	stripewebhook "github.com/stripe/stripe-go/v82/webhook"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// The torture test's size; LLMCTL_TORTURE_REQUESTS / _WEBHOOKS override it
// (the bar is 20,000 and 10,000).
func tortureSize(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil && n > 0 {
		return n
	}
	return def
}

const (
	tortureTenants  = 50
	tortureGateways = 3
	stripeSecret    = "whsec_torture_stripe"
	standardSecret  = "whsec_dG9ydHVyZS1zdGFuZGFyZC1zZWNyZXQ=" // base64("torture-standard-secret")
)

// gatewayProc is one `llmctl serve` process.
type gatewayProc struct {
	cmd   *exec.Cmd
	url   string
	admin string // the admin listener's URL, "off" when it is off
	done  chan struct{}
}

func startGateway(t *testing.T, bin string, args []string, logw io.Writer) *gatewayProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logw
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gatewayProc{cmd: cmd, done: make(chan struct{})}
	urls := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "serving: api="); ok {
				api, adm, _ := strings.Cut(rest, " admin=")
				urls <- [2]string{api, strings.TrimSpace(adm)}
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(g.done) }()
	select {
	case u := <-urls:
		g.url, g.admin = u[0], u[1]
	case <-g.done:
		t.Fatalf("llmctl serve exited before listening")
	case <-time.After(60 * time.Second):
		t.Fatalf("llmctl serve did not start")
	}
	return g
}

func buildLLMCtl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "llmctl")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// outcome is what the client saw for one request.
type outcome struct {
	gateway  int
	status   int
	killed   bool // the transport broke: its gateway was SIGKILLed mid-request
	tenant   int
	received int64  // content events the client read
	code     string // error.code of a refusal
}

// TestLedgerTorture runs three `llmctl serve` processes on one real
// PostgreSQL and hammers them with requests and payment webhooks while
// PostgreSQL crashes (pg_ctl stop -m immediate) and restarts and one gateway
// is SIGKILLed and restarted. Afterwards every token the backend double
// delivered is charged exactly once and every payment credited exactly once.
func TestLedgerTorture(t *testing.T) {
	if testing.Short() {
		t.Skip("torture test skipped in -short mode")
	}
	nReq := tortureSize("LLMCTL_TORTURE_REQUESTS", 20000)
	nHooks := tortureSize("LLMCTL_TORTURE_WEBHOOKS", 10000)
	ctx := context.Background()
	pg := testenv.PG(t)
	dsn := pg.NewDatabase(t)
	bin := buildLLMCtl(t)
	double := upstreamdouble.Start(t, upstreamdouble.Options{Models: []string{"m"}})
	// Answers 500s: a backend failure releases the whole hold. A separate
	// backend, since the gateway ejects a backend that answers 5xx.
	failing := upstreamdouble.Start(t, upstreamdouble.Options{Name: "failing", Models: []string{"mf"}})

	// Tenants, keys and starting funds: 1 unit each = 1,000,000 tokens at
	// the test price. Tenant "broke" has nothing and must get 402s.
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ls, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	type tenant struct{ id, name, key string }
	var tenants []tenant
	for i := range tortureTenants + 1 {
		name := fmt.Sprintf("tenant%02d", i)
		if i == tortureTenants {
			name = "broke"
		}
		tn, err := st.CreateTenant(ctx, name, billing.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		_, key, err := st.CreateKey(ctx, store.NewKey{Tenant: tn.ID})
		if err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, tenant{tn.ID, name, key})
		if name != "broke" {
			if _, err := ls.Apply(ctx, []ledger.Entry{{Key: "fund:" + tn.ID, TenantID: tn.ID, Kind: ledger.KindCredit,
				Amount: ledger.Unit, Time: time.Now()}}); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Completion tokens cost 1 µ each, prompt tokens nothing: the gateway
	// prices prompts from upstream usage or its own estimate, the double
	// counts words, and only delivered completion tokens can be compared
	// exactly with what the double saw (see docs/billing.md).
	dir := t.TempDir()
	prices := filepath.Join(dir, "prices.yaml")
	if err := os.WriteFile(prices, []byte("models:\n  m: {input: 0, output: 1000000}\n  mf: {input: 0, output: 1000000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logf := gatewayLog(t, dir)
	args := func(i int) []string {
		return []string{"serve", "--db", dsn, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--log-level", "warn",
			"--backend", "d=" + double.URL(), "--backend", "f=" + failing.URL(), "--prices", prices, "--spool-dir", filepath.Join(dir, fmt.Sprint("spool", i)),
			"--stripe-webhook-secret", stripeSecret, "--standard-webhook-secret", standardSecret}
	}
	gws := startFleet(t, bin, tortureGateways, args, logf)
	gatewayURL := gws.url

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 60 * time.Second}
	var (
		done     atomic.Int64
		outcomes = make([]outcome, nReq)
		killing  atomic.Bool
	)
	doRequest := func(i int) {
		tn := i % tortureTenants
		if i%97 == 0 {
			tn = tortureTenants // broke
		}
		gi := i % tortureGateways
		k := 3 + i%9
		var prompt string
		model, stream, includeUsage, abortAt := "m", false, false, -1
		switch i % 6 {
		case 0:
			prompt = fmt.Sprintf("hello tokens=%d", k)
		case 1:
			prompt, stream, includeUsage = fmt.Sprintf("hello tokens=%d", k), true, true
		case 2:
			prompt, stream = fmt.Sprintf("hello tokens=%d", k), true
		case 3: // the client walks away after a few tokens
			abortAt = 1 + i%3
			prompt, stream = fmt.Sprintf("hello tokens=%d stall-after=%d", k, abortAt), true
		case 4: // the backend dies mid-stream
			prompt, stream = fmt.Sprintf("hello tokens=%d fail-after=%d", k, i%4), true
		case 5: // the backend fails before answering
			prompt, model = "hello status=500", "mf"
		}
		body, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 64, "stream": stream,
			"messages":       []map[string]string{{"role": "user", "content": prompt}},
			"stream_options": map[string]bool{"include_usage": includeUsage}})
		if !stream {
			body, _ = json.Marshal(map[string]any{"model": model, "max_tokens": 64,
				"messages": []map[string]string{{"role": "user", "content": prompt}}})
		}
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		req, _ := http.NewRequestWithContext(rctx, http.MethodPost, gatewayURL(gi)+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tenants[tn].key)
		req.Header.Set("X-Request-Id", fmt.Sprint("tt-", i))
		o := outcome{gateway: gi, tenant: tn}
		defer func() { outcomes[i] = o; done.Add(1) }()
		resp, err := client.Do(req)
		if err != nil {
			o.killed = gi == 1 && killing.Load()
			o.status = -1
			return
		}
		defer resp.Body.Close()
		o.status = resp.StatusCode
		if !stream || resp.StatusCode != 200 {
			var e struct{ Error struct{ Code string } }
			var b []byte
			b, err = io.ReadAll(resp.Body)
			if json.Unmarshal(b, &e) == nil {
				o.code = e.Error.Code
			}
		} else {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.Contains(sc.Text(), `"content":"t`) {
					o.received++
					if int(o.received) == abortAt {
						cancel() // nothing more is coming: the double stalls
						break
					}
				}
			}
			err = sc.Err()
		}
		if err != nil && abortAt < 0 && gi == 1 && killing.Load() {
			o.killed = true
		}
	}

	// Webhooks: unique payment events, a third of them delivered twice,
	// retried (as providers do) until answered 2xx.
	type hook struct {
		provider, id string
		tenant       int
		cents        int64
	}
	var hooks []hook
	for j := 0; len(hooks) < nHooks; j++ {
		h := hook{provider: "stripe", id: fmt.Sprint("evt_", j), tenant: j % tortureTenants, cents: int64(1 + j%50)}
		if j%2 == 1 {
			h.provider, h.id = "standard", fmt.Sprint("msg_", j)
		}
		hooks = append(hooks, h)
		if j%3 == 0 && len(hooks) < nHooks {
			hooks = append(hooks, h) // replay
		}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(hooks), func(a, b int) { hooks[a], hooks[b] = hooks[b], hooks[a] })
	stdSigner, err := standardwebhooks.NewWebhook(standardSecret)
	if err != nil {
		t.Fatal(err)
	}
	var hookFailures atomic.Int64
	deliver := func(j int) {
		h := hooks[j]
		deadline := time.Now().Add(90 * time.Second)
		for attempt := 0; ; attempt++ {
			var body []byte
			hdr := http.Header{}
			if h.provider == "stripe" {
				body = []byte(fmt.Sprintf(`{"id":%q,"type":"invoice.paid","data":{"object":{"amount_paid":%d,"currency":"usd","metadata":{"tenant":%q}}}}`,
					h.id, h.cents, tenants[h.tenant].name))
				hdr.Set("Stripe-Signature", stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{Payload: body, Secret: stripeSecret}).Header)
			} else {
				body = []byte(fmt.Sprintf(`{"type":"payment.succeeded","data":{"tenant":%q,"amount_micros":%d}}`, tenants[h.tenant].id, h.cents*10_000))
				now := time.Now()
				sig, _ := stdSigner.Sign(h.id, now, body)
				hdr.Set("webhook-id", h.id)
				hdr.Set("webhook-timestamp", fmt.Sprint(now.Unix()))
				hdr.Set("webhook-signature", sig)
			}
			req, _ := http.NewRequest(http.MethodPost, gatewayURL((j+attempt)%tortureGateways)+"/v1/billing/webhooks/"+h.provider, bytes.NewReader(body))
			req.Header = hdr
			resp, err := client.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return
				}
				if resp.StatusCode < 500 {
					hookFailures.Add(1)
					t.Errorf("webhook %s answered %d", h.id, resp.StatusCode)
					return
				}
			}
			if time.Now().After(deadline) {
				hookFailures.Add(1)
				t.Errorf("webhook %s never accepted: %v", h.id, err)
				return
			}
			time.Sleep(time.Duration(50*(attempt+1)) * time.Millisecond)
		}
	}

	// Faults, triggered by progress.
	faults := make(chan string, 8)
	go func() {
		waitFor := func(frac float64) {
			for float64(done.Load()) < frac*float64(nReq) {
				time.Sleep(20 * time.Millisecond)
			}
		}
		waitFor(0.25)
		faults <- "postgres stop -m immediate at " + time.Now().Format("15:04:05.000")
		if err := pg.Stop(true); err != nil {
			faults <- "ERROR " + err.Error()
		}
		time.Sleep(time.Second)
		if err := pg.Start(); err != nil {
			faults <- "ERROR " + err.Error()
		}
		faults <- "postgres restarted at " + time.Now().Format("15:04:05.000")
		waitFor(0.55)
		killing.Store(true)
		gws.kill(1)
		faults <- "gateway 1 SIGKILLed"
		time.Sleep(500 * time.Millisecond)
		gws.restart(1)
		time.Sleep(500 * time.Millisecond)
		killing.Store(false)
		faults <- "gateway 1 restarted on its spool"
		close(faults)
	}()

	start := time.Now()
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= nReq {
					return
				}
				doRequest(i)
				if outcomes[i].status == http.StatusServiceUnavailable || outcomes[i].status < 0 {
					time.Sleep(200 * time.Millisecond) // back off like a client would
				}
			}
		}()
	}
	nextHook := atomic.Int64{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(nextHook.Add(1)) - 1
				if j >= len(hooks) {
					return
				}
				deliver(j)
			}
		}()
	}
	wg.Wait()
	for f := range faults {
		t.Log("fault:", f)
		if strings.HasPrefix(f, "ERROR") {
			t.Fatal(f)
		}
	}
	t.Logf("%d requests and %d webhook deliveries through %d gateways in %s", nReq, len(hooks), tortureGateways, time.Since(start).Round(time.Millisecond))

	// Drain: graceful shutdown flushes every spool into PostgreSQL.
	for i, g := range gws.all() {
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("gateway %d did not shut down", i)
		}
	}
	for i := range tortureGateways {
		if left, _ := filepath.Glob(filepath.Join(dir, fmt.Sprint("spool", i), "*.spool")); len(left) != 0 {
			t.Errorf("gateway %d left %d spool segments after a graceful shutdown", i, len(left))
		}
	}

	// Requests: what the double delivered against what the ledger charged.
	entries, err := ls.Entries(ctx, ledger.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	charged := map[string]ledger.Entry{}
	for _, e := range entries {
		rid, ok := strings.CutPrefix(e.Key, "req:")
		if !ok {
			continue
		}
		rid = rid[:strings.LastIndexByte(rid, ':')]
		if prev, dup := charged[rid]; dup {
			t.Errorf("request %s charged twice: %+v and %+v", rid, prev, e)
		}
		charged[rid] = e
	}
	var (
		statuses                          = map[int]int{}
		delivered, debited, debitedMicros int64
		killedReqs, killedUncharged       int
		mismatches                        int
	)
	codes := map[string]int{}
	for i, o := range outcomes {
		statuses[o.status]++
		if o.code != "" {
			codes[fmt.Sprint(o.status, " ", o.code)]++
		}
		rid := fmt.Sprint("tt-", i)
		rec, reached := double.Record(rid)
		e, hasEntry := charged[rid]
		if frec, ok := failing.Record(rid); ok && (frec.CompletionTokens != 0 || hasEntry && e.CompletionTokens != 0) {
			t.Errorf("failed request %s: %+v charged %+v", rid, frec, e)
		}
		if o.tenant == tortureTenants && reached {
			t.Errorf("request %s of the broke tenant reached the backend (status %d)", rid, o.status)
		}
		if o.killed {
			// In flight on the SIGKILLed gateway: a settlement journaled
			// before the kill is replayed; one that never happened cannot
			// be. Either way never more than was delivered.
			killedReqs++
			if !hasEntry && reached && rec.CompletionTokens > 0 {
				killedUncharged++
			}
			if hasEntry && e.CompletionTokens > rec.CompletionTokens {
				t.Errorf("killed request %s charged %d tokens, %d delivered", rid, e.CompletionTokens, rec.CompletionTokens)
			}
			continue
		}
		if reached {
			delivered += rec.CompletionTokens
		}
		if hasEntry {
			debited += e.CompletionTokens
			debitedMicros += -int64(e.Amount)
		}
		var got int64
		if hasEntry {
			got = e.CompletionTokens
		}
		if want := rec.CompletionTokens; got != want || (reached && rec.Status == 200 && !hasEntry) {
			mismatches++
			if mismatches <= 10 {
				t.Errorf("request %s (outcome %+v): double delivered %d completion tokens (record %+v), ledger charged %d (entry %v)",
					rid, o, want, rec, got, hasEntry)
			}
		}
	}
	t.Logf("client statuses: %v; refusals: %v", statuses, codes)
	t.Logf("delivered %d completion tokens, charged %d tokens = %d µ; %d requests in flight on the killed gateway (%d of them delivered tokens never settled)",
		delivered, debited, debitedMicros, killedReqs, killedUncharged)
	if delivered != debited || debitedMicros != delivered {
		t.Errorf("Σ charged %d tokens / %d µ != Σ delivered %d tokens", debited, debitedMicros, delivered)
	}
	if statuses[200] < nReq/3 {
		t.Errorf("only %d of %d requests succeeded: the run did not exercise the ledger", statuses[200], nReq)
	}
	if statuses[402] == 0 {
		t.Error("the broke tenant was never refused with 402")
	}

	// Webhooks: each unique event credited once, replays credited nothing.
	want := map[string]int64{}
	for _, h := range hooks {
		want[h.provider+":"+h.id] = h.cents * 10_000
	}
	got := map[string]int64{}
	for _, e := range entries {
		if strings.HasPrefix(e.Key, "stripe:") || strings.HasPrefix(e.Key, "standard:") {
			if _, dup := got[e.Key]; dup {
				t.Errorf("payment %s credited twice", e.Key)
			}
			got[e.Key] = int64(e.Amount)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d payments credited, %d unique events sent", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("payment %s credited %d, want %d", k, got[k], v)
			break
		}
	}
	t.Logf("%d webhook deliveries, %d unique payments credited once each", len(hooks), len(got))

	r, err := ls.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("ledger verify: %+v", r)
	}
	// Every hold ended: the killed gateway's were released when it
	// restarted on its spool, not left to their hour.
	if r.Holds != 0 {
		t.Errorf("%d holds still open after every gateway stopped", r.Holds)
	}
	if out, errOut, err := run(t, "ledger", "verify", "--db", dsn); err != nil {
		t.Fatalf("llmctl ledger verify: %v\n%s%s", err, out, errOut)
	}
}

// tortureDeps is what the torture tests start from: a fresh PostgreSQL
// database, the built binary, a backend double serving model "m", and the
// store and ledger on that database (closed when the test ends).
func tortureDeps(t *testing.T) (dsn, bin string, double *upstreamdouble.Double, st store.Store, ls ledger.Store) {
	t.Helper()
	ctx := context.Background()
	dsn = testenv.PG(t).NewDatabase(t)
	bin = buildLLMCtl(t)
	double = upstreamdouble.Start(t, upstreamdouble.Options{Models: []string{"m"}})
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ls, err = ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	return dsn, bin, double, st, ls
}
