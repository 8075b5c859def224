package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/top"
	"github.com/llmctl/llmctl/pkg/top/toptest"
)

// topGateway serves /metrics and adds the same traffic before every scrape
// after the first, so one --once window holds exactly that traffic.
func topGateway(t *testing.T) string {
	t.Helper()
	gw := toptest.NewGateway()
	gw.Up.WithLabelValues("gpu-box").Set(1)
	gw.SetGPU("0", 0.5, 4<<30, 8<<30, 60, 120)
	h := gw.Handler()
	scrapes := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if scrapes > 0 {
			gw.Serve("llama", "200", "gpu-box", 9, 0.3, 0.08, 100, 40)
			gw.Serve("llama", "502", "gpu-box", 1, 0.3, 0, 100, 0)
		}
		scrapes++
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

func topLedger(t *testing.T) string {
	t.Helper()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")
	now := time.Now()
	toptest.Ledger(t, dsn, []string{"acme"}, func(ids map[string]string) []ledger.Entry {
		return []ledger.Entry{
			{Key: "c", TenantID: ids["acme"], Kind: ledger.KindCredit, Amount: 10 * ledger.Unit, Time: now.Add(-48 * time.Hour)},
			{Key: "d", TenantID: ids["acme"], Kind: ledger.KindDebit, Amount: -250_000, Model: "llama", Time: now.Add(-time.Minute)},
		}
	})
	return dsn
}

func TestTopOnceJSON(t *testing.T) {
	target, dsn := topGateway(t), topLedger(t)
	out, _, err := run(t, "top", "--once", "-o", "json", "--interval", "200ms", "--target", target, "--db", dsn)
	if err != nil {
		t.Fatal(err)
	}
	var s top.Snapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(s.Targets) != 1 || !s.Targets[0].Up || s.Traffic == nil {
		t.Fatalf("snapshot = %s", out)
	}
	o := s.Traffic.Overall
	// Window: 10 requests at 0.3 s, one 502. Rates depend on the window's
	// length; the ratios and quantiles do not.
	if o.RPS <= 0 || o.Samples != 10 || o.ErrorRatio < 0.0999 || o.ErrorRatio > 0.1001 {
		t.Errorf("overall = %+v", o)
	}
	if p50 := o.P50; p50 < 0.374 || p50 > 0.376 { // 0.25 + 0.25*5/10
		t.Errorf("p50 = %v, want 0.375", p50)
	}
	if r := o.TokensInPS / o.TokensOutPS; r < 2.777 || r > 2.778 { // 1000 in / 360 out
		t.Errorf("tokens in/out ratio = %v", r)
	}
	if s.GPUSource != "gateway" || len(s.GPUs) != 1 || s.GPUs[0].MemTotal != 8<<30 {
		t.Errorf("gpus = %s %+v", s.GPUSource, s.GPUs)
	}
	if len(s.Tenants) != 1 || s.Tenants[0].Name != "acme" || s.Tenants[0].Balance != 9_750_000 ||
		s.Tenants[0].Spend1h != 250_000 || s.Tenants[0].Requests24h != 1 {
		t.Errorf("tenants = %+v", s.Tenants)
	}
}

func TestTopOnceTable(t *testing.T) {
	target, dsn := topGateway(t), topLedger(t)
	out, _, err := run(t, "top", "--once", "--interval", "200ms", "--target", target, "--db", dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TARGETS", target, "TRAFFIC", "llama", "BACKENDS", "gpu-box", "GPUS", "TENANTS", "acme", "9.750000", "0.250000"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestTopOnceUnreachableTarget(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/metrics"
	srv.Close()
	out, _, err := run(t, "top", "--once", "-o", "json", "--interval", "100ms", "--target", url)
	if err != nil {
		t.Fatalf("an unreachable target is data, not a failure: %v", err)
	}
	var s top.Snapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Targets) != 1 || s.Targets[0].Up || !strings.Contains(s.Targets[0].Error, url) || s.Traffic != nil {
		t.Errorf("snapshot = %s", out)
	}
	if s.GPUNote == "" {
		t.Errorf("no GPU note: %s", out)
	}
}

func TestTopBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"top", "--once", "--target", "localhost:9090"}, "want an http(s) URL"},
		{[]string{"top", "--once", "--target", "http://x", "-o", "xml"}, "xml"},
		{[]string{"top", "--target", "http://x", "-o", "json"}, "--once"},
		{[]string{"top", "--once", "--interval", "1ms"}, "at least 100ms"},
		{[]string{"top", "--once", "--db", "mysql://x"}, "--db"},
	} {
		_, _, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestTopNamespaceAndTargetExclusive(t *testing.T) {
	_, _, err := run(t, "top", "--once", "-n", "llmctl", "--target", "http://127.0.0.1:9090")
	if err == nil || !strings.Contains(err.Error(), "use one") {
		t.Fatalf("err = %v", err)
	}
}

func TestTopNamespaceUnreachableCluster(t *testing.T) {
	// A kubeconfig pointing at a closed port: discovery fails, and that is
	// reported as a down pseudo-target, not an exit.
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: " + addr + "}}]\n" +
		"users: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "top", "--once", "-o", "json", "--interval", "100ms", "-n", "llmctl", "--kubeconfig", kc)
	if err != nil {
		t.Fatal(err)
	}
	var s top.Snapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Targets) != 1 || s.Targets[0].URL != top.DiscoveryTarget || s.Targets[0].Up || !strings.Contains(s.Targets[0].Error, "llmctl") {
		t.Fatalf("snapshot = %s", out)
	}
}

// TestTopNeedsATerminal: without a terminal the screen is refused with what
// to do instead, before anything is drawn or connected to.
func TestTopNeedsATerminal(t *testing.T) {
	out, _, err := run(t, "top", "--target", "http://127.0.0.1:9")
	if err == nil || !strings.Contains(err.Error(), "top needs a terminal") || !strings.Contains(err.Error(), "--once") {
		t.Fatalf("err = %v", err)
	}
	if out != "" {
		t.Fatalf("wrote %q to a non-terminal (alternate-screen escapes?)", out)
	}
}

// TestTopConfigCosts: the Margin pane's costs come from --config and a bad
// amount is refused, naming the field, before the screen.
func TestTopConfigCosts(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "llmctl.yaml")
	if err := os.WriteFile(cfg, []byte("costs:\n  gpuMonthly: \"-3\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, "top", "--config", cfg, "--db", topLedger(t), "--target", "http://127.0.0.1:9")
	if err == nil || !strings.Contains(err.Error(), "costs.gpuMonthly") {
		t.Fatalf("err = %v, want costs.gpuMonthly refused", err)
	}
	if err := os.WriteFile(cfg, []byte("costs:\n  gpuMonthly: \"450\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Good costs: on to the terminal check.
	_, _, err = run(t, "top", "--config", cfg, "--db", topLedger(t), "--target", "http://127.0.0.1:9")
	if err == nil || !strings.Contains(err.Error(), "top needs a terminal") {
		t.Fatalf("err = %v", err)
	}
}
