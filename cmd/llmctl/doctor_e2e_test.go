package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/preflight"
)

// TestDoctorE2E runs the paid canary against the built `llmctl serve` on
// SQLite in front of the upstream double: on a priced model every link
// passes and the canary's balance ends where it was funded (the charge
// credited back); on a model the prices file leaves out, the canary finds
// the broken link (the gateway refuses to sell it) and exits 1 with the remedy.
func TestDoctorE2E(t *testing.T) {
	dir, dsn, st, adminKey := sqliteWithAdmin(t)
	st.Close()
	double := upstreamdouble.Start(t, upstreamdouble.Options{Models: []string{"m", "free"}})
	prices := filepath.Join(dir, "prices.yaml")
	if err := os.WriteFile(prices, []byte("models:\n  m: {input: 100000, output: 300000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	g := startGateway(t, buildLLMCtl(t), []string{"serve", "--db", dsn, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--backend", "d=" + double.URL(), "--prices", prices, "--spool-dir", filepath.Join(dir, "spool")}, logs)
	t.Cleanup(func() { _ = g.cmd.Process.Kill(); <-g.done })
	t.Setenv("LLMCTL_SERVER", "")
	t.Setenv("LLMCTL_API_KEY", "")

	canary := func(model string) (preflight.Report, error) {
		t.Helper()
		out, errOut, err := run(t, "doctor", "--e2e", "--server", g.url, "--api-key", adminKey, "--e2e-model", model, "--e2e-fund", "1",
			"--metrics-url", g.admin+"/metrics", "-o", "json")
		var rep preflight.Report
		if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
			t.Fatalf("doctor --e2e output: %v\n%s\n%s\n%s", jerr, out, errOut, logs)
		}
		return rep, err
	}
	verdicts := func(rep preflight.Report) map[string]preflight.Result {
		m := map[string]preflight.Result{}
		for _, r := range rep.Results {
			m[r.ID] = r
		}
		return m
	}
	rep, err := canary("m")
	v := verdicts(rep)
	for _, id := range []string{"e2e.tenant", "e2e.key", "e2e.request", "e2e.ttft", "e2e.ledger", "e2e.balance", "e2e.cleanup"} {
		if v[id].Verdict != preflight.Pass {
			t.Errorf("%s: %+v", id, v[id])
		}
	}
	// The charge is held to the price the admin API lists, to the micro-unit.
	if !strings.Contains(v["e2e.ledger"].Message, "exactly its price") {
		t.Errorf("e2e.ledger: %+v", v["e2e.ledger"])
	}
	if err != nil || v["e2e.metrics"].Verdict != preflight.Pass || rep.Summary.Fail != 0 {
		t.Fatalf("healthy chain: %v %+v\n%s", err, rep, logs)
	}
	// The canary tenant: funded 1, charged, credited back: balance 1 again.
	name := strings.TrimPrefix(strings.SplitN(v["e2e.cleanup"].Message, "tenant ", 2)[1], "")
	name = strings.TrimSuffix(name, " suspended")
	out, errOut, err := run(t, "ledger", "balance", name, "-o", "json", "--db", dsn)
	var bal struct{ BalanceMicros, ReservedMicros int64 }
	if err != nil || json.Unmarshal([]byte(out), &bal) != nil || bal.BalanceMicros != 1_000_000 || bal.ReservedMicros != 0 {
		t.Fatalf("canary %s after cleanup: %v %s %s", name, err, out, errOut)
	}

	rep, err = canary("free")
	v = verdicts(rep)
	var ec exitCoder
	if err == nil || !errors.As(err, &ec) || ec.ExitCode() != 1 || v["e2e.request"].Verdict != preflight.Fail ||
		!strings.Contains(v["e2e.request"].Message, "model_not_priced") || !strings.Contains(v["e2e.request"].Remedy, "price the model") ||
		v["e2e.ledger"].Verdict != preflight.Skip {
		t.Fatalf("unpriced model: %v %+v\n%s", err, rep, logs)
	}
	if v["e2e.cleanup"].Verdict != preflight.Pass {
		t.Fatalf("cleanup after a broken link: %+v", v["e2e.cleanup"])
	}
}
