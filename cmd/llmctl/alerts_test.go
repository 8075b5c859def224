package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// llmctl alerts on --db: the delivery log, redeliver and a tenant's
// threshold, each write audited.
func TestAlertsCLISQLite(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")
	must := func(args ...string) string {
		t.Helper()
		out, errOut, err := run(t, append(args, "--db", dsn)...)
		if err != nil {
			t.Fatalf("llmctl %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		_, _, err := run(t, append(args, "--db", dsn)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("llmctl %s: %v, want %q", strings.Join(args, " "), err, want)
		}
	}
	var tn struct{ ID string }
	if err := json.Unmarshal([]byte(must("tenants", "create", "acme", "-o", "json")), &tn); err != nil {
		t.Fatal(err)
	}

	// A payment writes payment.credited; a gateway's worker would create
	// its delivery: do that part here.
	ctx := context.Background()
	ls, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ls.Apply(ctx, []ledger.Entry{{Key: "stripe:evt_1", TenantID: tn.ID, Kind: ledger.KindCredit, Amount: 12_500_000, Time: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	ob, _ := ledger.OutboxOf(ls)
	if n, err := ob.Dispatch(ctx, []ledger.Route{{Endpoint: "https://hooks.example/x"}}, time.Now(), time.Hour); err != nil || n != 1 {
		t.Fatalf("dispatch: %d %v", n, err)
	}
	ls.Close()

	var ds []struct {
		ID       int64
		Type     string
		Status   string
		Endpoint string
		EventID  string `json:"event_id"`
	}
	if err := json.Unmarshal([]byte(must("alerts", "deliveries", "-o", "json")), &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Type != ledger.EventPaymentCredited || ds[0].Status != "pending" || ds[0].EventID == "" {
		t.Fatalf("deliveries: %+v", ds)
	}
	if out := must("alerts", "deliveries", "--status", "pending", "--tenant", "acme"); !strings.Contains(out, "payment.credited") || !strings.Contains(out, "next ") {
		t.Fatalf("deliveries table:\n%s", out)
	}
	if out := must("alerts", "deliveries", "--status", "failed"); strings.Contains(out, "payment.credited") {
		t.Fatalf("status filter:\n%s", out)
	}
	id := strconv.FormatInt(ds[0].ID, 10)
	if out := must("alerts", "redeliver", id); !strings.Contains(out, "pending again") {
		t.Fatalf("redeliver: %s", out)
	}
	fails("not found", "alerts", "redeliver", "9999")
	fails("want the number", "alerts", "redeliver", "abc")
	fails("want pending, delivered or failed", "alerts", "deliveries", "--status", "sent")

	if out := must("alerts", "threshold", "acme"); !strings.Contains(out, "gateway's default") {
		t.Fatalf("threshold: %s", out)
	}
	if out := must("alerts", "threshold", "acme", "--low-balance", "2.5"); !strings.Contains(out, "below 2.500000 (its own threshold)") {
		t.Fatalf("set threshold: %s", out)
	}
	var ta struct {
		Tenant, Source   string
		LowBalanceMicros int64 `json:"low_balance_micros"`
	}
	if err := json.Unmarshal([]byte(must("alerts", "threshold", "acme", "-o", "json")), &ta); err != nil || ta.Source != "tenant" || ta.LowBalanceMicros != 2_500_000 {
		t.Fatalf("threshold -o json: %+v %v", ta, err)
	}
	if out := must("alerts", "threshold", "acme", "--default"); !strings.Contains(out, "gateway's default") {
		t.Fatalf("drop threshold: %s", out)
	}
	fails("must not be negative", "alerts", "threshold", "acme", "--low-balance", "-1")
	fails("both given", "alerts", "threshold", "acme", "--low-balance", "1", "--default")
	fails("not found", "alerts", "threshold", "nobody", "--low-balance", "1")

	var recs []struct {
		Action, Target string
		Details        map[string]any
	}
	if err := json.Unmarshal([]byte(must("audit", "-o", "json")), &recs); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		got[r.Action+" "+r.Target] += fmt.Sprint(r.Details["low_balance"], ";")
	}
	if _, ok := got["alerts.redeliver "+id]; !ok || got["alerts.threshold acme"] != "<nil>;2.500000;" {
		t.Fatalf("audit records: %v", got)
	}
}
