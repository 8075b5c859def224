package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
)

const lemonTortureSecret = "torture-lemon-secret"

// TestVoucherTorture runs 3 `llmctl serve` replicas on one PostgreSQL: the
// admin CLI (--server) creates 100 codes, then 20 clients (4 keys on each
// of 5 tenants) redeem all 100 at once, each through a different replica.
// Every code is credited exactly once, every other attempt is the same
// 400 invalid_voucher, and the tenants' balances add up to the vouchers'
// total to the micro-unit. Billing is on through the Lemon Squeezy secret
// alone (no prices), and the same paid orders, delivered to all replicas
// at once, are credited once each.
func TestVoucherTorture(t *testing.T) {
	if testing.Short() {
		t.Skip("torture test skipped in -short mode")
	}
	const (
		codes   = 100
		clients = 20
		tenants = 5
		amount  = ledger.Micros(1_234_567) // 1.234567 each
		orders  = 10
	)
	ctx := context.Background()
	dsn := testenv.PG(t).NewDatabase(t)
	bin := buildLLMCtl(t)
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	adminKey, err := serve.EnsureAdmin(ctx, st, "")
	if err != nil {
		t.Fatal(err)
	}
	type client struct{ tenant, key string }
	var cs []client
	tenantIDs := map[string]string{}
	for i := range tenants {
		tn, err := st.CreateTenant(ctx, fmt.Sprintf("shop%d", i), billing.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		tenantIDs[tn.Name] = tn.ID
		for range clients / tenants {
			_, key, err := st.CreateKey(ctx, store.NewKey{Tenant: tn.ID})
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, client{tn.Name, key})
		}
	}

	dir := t.TempDir()
	logs := &testenv.Buffer{}
	gws := make([]*gatewayProc, tortureGateways)
	for i := range gws {
		gws[i] = startGateway(t, bin, []string{"serve", "--db", dsn, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--log-level", "info",
			"--spool-dir", filepath.Join(dir, fmt.Sprint("spool", i)), "--lemonsqueezy-webhook-secret", lemonTortureSecret,
			"--redeem-attempts-per-minute", "-1"}, logs)
	}
	defer func() {
		for _, g := range gws {
			_ = g.cmd.Process.Kill()
			<-g.done
		}
		if t.Failed() {
			l := logs.String()
			t.Logf("gateway logs (tail):\n%s", l[max(0, len(l)-4000):])
		}
	}()

	// The codes, printed once by the CLI through the admin API.
	out, err := exec.Command(bin, "vouchers", "create", "--server", gws[0].url, "--api-key", adminKey,
		"--amount", amount.String(), "--count", fmt.Sprint(codes), "--expires", "1h", "-o", "json").Output()
	if err != nil {
		t.Fatalf("vouchers create: %v", err)
	}
	var created []struct{ ID, Code string }
	if err := json.Unmarshal(out, &created); err != nil || len(created) != codes {
		t.Fatalf("vouchers create -o json: %v (%d vouchers)", err, len(created))
	}

	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 60 * time.Second}
	post := func(url, key string, body []byte, hdr map[string]string) (int, []byte) {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	type result struct {
		tenant  string
		voucher string
		micros  int64
	}
	var (
		mu       sync.Mutex
		won      []result
		refusals = map[string]int{}
		wg       sync.WaitGroup
	)
	start := make(chan struct{})
	for c, cl := range cs {
		wg.Go(func() {
			<-start
			url := gws[c%len(gws)].url + "/v1/me/redeem"
			for i := range codes {
				v := created[(i+c*7)%codes] // clients collide on every code, in different orders
				code, b := post(url, cl.key, []byte(`{"code":"`+v.Code+`"}`), nil)
				mu.Lock()
				switch code {
				case 200:
					var r struct {
						VoucherID      string `json:"voucher_id"`
						Tenant         string
						CreditedMicros int64 `json:"credited_micros"`
					}
					if err := json.Unmarshal(b, &r); err != nil || r.VoucherID != v.ID || r.Tenant != cl.tenant {
						t.Errorf("redemption answer %s for %s", b, v.ID)
					}
					won = append(won, result{cl.tenant, r.VoucherID, r.CreditedMicros})
				default:
					refusals[fmt.Sprintf("%d %s", code, b)]++
				}
				mu.Unlock()
			}
		})
	}

	// Meanwhile: each paid order, and then its partial refund, delivered to
	// every replica at once, twice.
	for o := range orders {
		for _, ev := range []string{"order_created", "order_refunded"} {
			body := []byte(fmt.Sprintf(`{"meta":{"event_name":%q,"custom_data":{"tenant":"shop%d"}},"data":{"type":"orders","id":"%d","attributes":{"currency":"USD","status":"paid","total":1001,"refunded_amount":%d}}}`,
				ev, o%tenants, 9000+o, 1+o))
			mac := hmac.New(sha256.New, []byte(lemonTortureSecret))
			mac.Write(body)
			hdr := map[string]string{"X-Signature": hex.EncodeToString(mac.Sum(nil)), "X-Event-Name": ev}
			for r := range 2 * len(gws) {
				wg.Go(func() {
					<-start
					if code, b := post(gws[r%len(gws)].url+"/v1/billing/webhooks/lemonsqueezy", "", body, hdr); code != 200 {
						t.Errorf("lemon squeezy %s of order %d: %d %s", ev, o, code, b)
					}
				})
			}
		}
	}
	close(start)
	wg.Wait()

	if len(won) != codes {
		t.Fatalf("%d redemptions succeeded, want %d; refusals: %v", len(won), codes, refusals)
	}
	if len(refusals) != 1 {
		t.Fatalf("refusals differ (an oracle, or errors): %v", refusals)
	}
	for k, n := range refusals {
		if !strings.HasPrefix(k, "400 ") || !strings.Contains(k, `"invalid_voucher"`) || n != codes*(clients-1) {
			t.Fatalf("refusals: %d × %s, want %d × 400 invalid_voucher", n, k, codes*(clients-1))
		}
	}
	seen := map[string]bool{}
	perTenant := map[string]ledger.Micros{}
	for _, w := range won {
		if seen[w.voucher] || w.micros != int64(amount) {
			t.Fatalf("voucher %s credited twice, or %d micro-units", w.voucher, w.micros)
		}
		seen[w.voucher] = true
		perTenant[w.tenant] += amount
	}
	// Each shop got its vouchers, plus its orders' 10.01 less their refunds.
	ls, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	var total ledger.Micros
	for name, id := range tenantIDs {
		want := perTenant[name]
		for o := name[len("shop"):][0] - '0'; int(o) < orders; o += tenants {
			want += 10_010_000 - ledger.Micros(1+int(o))*10_000
		}
		a, err := ls.Account(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if a.Balance != want {
			t.Errorf("%s: balance %s, want %s", name, a.Balance, want)
		}
		total += a.Balance
	}
	if want := ledger.Micros(codes)*amount + orders*10_010_000 - ledger.Micros(orders*(orders+1)/2)*10_000; total != want {
		t.Fatalf("total balance %s, want %s", total, want)
	}
	vs, err := ls.Vouchers(ctx, ledger.VoucherFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.State(time.Now()) != "redeemed" {
			t.Fatalf("voucher %s is %s", v.ID, v.State(time.Now()))
		}
	}
	if r, err := ls.Verify(ctx); err != nil || !r.OK() {
		t.Fatalf("verify: %+v %v", r, err)
	}
	// No code reached a log line.
	for _, v := range created {
		if strings.Contains(logs.String(), strings.TrimPrefix(v.Code, "LLMV-")[:9]) {
			t.Fatalf("a voucher code is in the gateway logs")
		}
	}
}
