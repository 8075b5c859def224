package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// TestBudgetTorture runs three `llmctl serve` processes on one PostgreSQL
// and sends 20 clients' concurrent requests, plain and streamed, spread over
// them, for tenants and keys under calendar (in a non-UTC zone) and rolling
// budgets far smaller than their balances. Afterwards, with every request
// settled, the spend in each budget's period is at most its amount (exceeded
// by zero micro-units), every refusal was a 429 budget_exceeded with
// Retry-After, and the budgets were used up to within one request's hold.
func TestBudgetTorture(t *testing.T) {
	if testing.Short() {
		t.Skip("torture test skipped in -short mode")
	}
	nReq := tortureSize("LLMCTL_TORTURE_BUDGET_REQUESTS", 1500)
	const (
		clients  = 20
		maxTok   = 20 // a request holds 20 µ: completion tokens cost 1 µ, prompts nothing
		gateways = 3
	)
	ctx := context.Background()
	dsn, bin, double, st, ls := tortureDeps(t)
	type caller struct{ tenantID, key string }
	var callers []caller
	var budgets []ledger.Budget
	for i, spec := range []struct {
		keys    int
		budgets []ledger.Budget // TenantID and KeyID ("k0": the first key) filled in below
	}{
		{1, []ledger.Budget{{Amount: 500, Period: ledger.PeriodMonth, TZ: "Europe/Berlin"}}},
		{1, []ledger.Budget{{Amount: 300, Period: ledger.PeriodRolling, Duration: time.Hour}}},
		{2, []ledger.Budget{{Amount: 400, Period: ledger.PeriodWeek, TZ: "America/New_York"}, {KeyID: "k0", Amount: 150, Period: ledger.PeriodDay}}},
	} {
		tn, err := st.CreateTenant(ctx, fmt.Sprint("budget", i), billing.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		var keyIDs []string
		for range spec.keys {
			k, secret, err := st.CreateKey(ctx, store.NewKey{Tenant: tn.ID})
			if err != nil {
				t.Fatal(err)
			}
			keyIDs = append(keyIDs, k.ID)
			callers = append(callers, caller{tn.ID, secret})
		}
		if _, err := ls.Apply(ctx, []ledger.Entry{{Key: "fund:" + tn.ID, TenantID: tn.ID, Kind: ledger.KindCredit,
			Amount: ledger.Unit, Time: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		for _, b := range spec.budgets {
			b.TenantID = tn.ID
			if b.KeyID == "k0" {
				b.KeyID = keyIDs[0]
			}
			saved, err := ls.SetBudget(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			budgets = append(budgets, saved)
		}
	}

	dir := t.TempDir()
	prices := filepath.Join(dir, "prices.yaml")
	if err := os.WriteFile(prices, []byte("models:\n  m: {input: 0, output: 1000000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "gateways.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	gws := make([]*gatewayProc, gateways)
	for i := range gws {
		gws[i] = startGateway(t, bin, []string{"serve", "--db", dsn, "--listen", "127.0.0.1:0", "--admin-listen", "off",
			"--log-level", "warn", "--backend", "d=" + double.URL(), "--prices", prices,
			"--spool-dir", filepath.Join(dir, fmt.Sprint("spool", i))}, logf)
	}
	defer func() {
		for _, g := range gws {
			_ = g.cmd.Process.Kill()
			<-g.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("gateway logs:\n%s", b)
		}
	}()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 60 * time.Second}
	var ok, refused atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= nReq || t.Failed() {
					return
				}
				c := callers[i%len(callers)]
				stream := i%2 == 1
				body := fmt.Sprintf(`{"model":"m","max_tokens":%d,"stream":%t,"messages":[{"role":"user","content":"hello tokens=%d"}]}`,
					maxTok, stream, 3+i%9)
				req, _ := http.NewRequest("POST", gws[i%gateways].url+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+c.key)
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("request %d: %v", i, err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					var e struct{ Error struct{ Type, Code string } }
					if json.Unmarshal(b, &e) != nil || e.Error.Code != "budget_exceeded" || resp.Header.Get("Retry-After") == "" {
						t.Errorf("request %d: a 429 that is not budget_exceeded with Retry-After: %s", i, b)
						return
					}
					refused.Add(1)
				default:
					t.Errorf("request %d: status %d: %s", i, resp.StatusCode, b)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// Every settlement reaches the database through a spool writer: wait
	// until no hold is open, then the spend is settled debits only.
	deadline := time.Now().Add(60 * time.Second)
	for {
		holds, err := ls.Holds(ctx, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(holds) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d holds still open a minute after the load", len(holds))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d requests: %d admitted, %d refused by a budget", nReq, ok.Load(), refused.Load())
	for _, b := range budgets {
		sts, err := ls.Budgets(ctx, b.TenantID, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sts {
			if s.ID != b.ID {
				continue
			}
			t.Logf("budget %s (%s, key %q): spent %d µ of %d µ", s.ID, s.Describe(), s.KeyID, s.Spent, s.Amount)
			if s.Spent > s.Amount {
				t.Errorf("budget %s exceeded: %d µ spent of %d µ", s.ID, s.Spent, s.Amount)
			}
			// The load met the budget: a refusal means spend + 20 > amount
			// at that moment, but holds open then may settle for less (3 to
			// 11 of their 20 µ), so only a loose floor is certain.
			if s.Spent < s.Amount/2 {
				t.Errorf("budget %s only reached %d µ of %d µ: the load never met it", s.ID, s.Spent, s.Amount)
			}
		}
	}
	if r, err := ls.Verify(ctx); err != nil || !r.OK() {
		t.Fatalf("verify: %+v %v", r, err)
	}
}
