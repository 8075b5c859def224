package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/preflight/plan"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// TestPlanDemo probes the built `llmctl serve` serving the embedded demo
// model at concurrency 1 and 2, within a bounded budget, and checks the
// suggestion is consistent with what was measured (no timing is asserted:
// the target is loose enough for any machine; numbers go to the log).
func TestPlanDemo(t *testing.T) {
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "llmctl.db")
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	key := tenantWithKey(t, st, "acme")
	st.Close()
	logs := &testenv.Buffer{}
	g := startGateway(t, buildLLMCtl(t), []string{"serve", "--db", dsn, "--listen", "127.0.0.1:0", "--admin-listen", "off",
		"--spool-dir", filepath.Join(dir, "spool")}, logs)
	t.Cleanup(func() { _ = g.cmd.Process.Kill(); <-g.done })
	t.Setenv("LLMCTL_SERVER", "")
	t.Setenv("LLMCTL_API_KEY", "")

	out, errOut, err := run(t, "plan", "--server", g.url, "--api-key", key, "--model", engine.DemoName, "--levels", "1,2",
		"--per-level", "2", "--max-tokens", "16", "--ttft-p99", "5m", "--budget", "4m", "-o", "json")
	var p plan.Plan
	if err != nil || json.Unmarshal([]byte(out), &p) != nil {
		t.Fatalf("plan: %v\n%s\n%s\n%s", err, out, errOut, logs)
	}
	t.Logf("plan: %+v", p)
	if len(p.Levels) != 2 || p.MaxConcurrency != 2 || p.TokensPerSecond <= 0 || p.TokensPerSecond != p.Levels[1].TokensPerSecond ||
		p.TokensPerDay != int64(p.TokensPerSecond*86_400) || p.TenantTPM != int64(p.TokensPerSecond*60) {
		t.Fatalf("plan inconsistent with its levels: %+v", p)
	}
	for _, l := range p.Levels {
		if l.Errors != 0 || l.Requests != 2 || l.TTFTP99 < l.TTFTP50 || l.TTFTP50 <= 0 {
			t.Fatalf("level %+v", l)
		}
	}
	// A target nothing can meet: no suggestion, and it says so.
	out, _, err = run(t, "plan", "--server", g.url, "--api-key", key, "--model", engine.DemoName, "--levels", "1",
		"--per-level", "1", "--max-tokens", "4", "--ttft-p99", "1ns", "--budget", "2m", "-o", "json")
	if err != nil || json.Unmarshal([]byte(out), &p) != nil || p.MaxConcurrency != 0 || p.TokensPerDay != 0 {
		t.Fatalf("impossible target: %v %+v", err, p)
	}
}
