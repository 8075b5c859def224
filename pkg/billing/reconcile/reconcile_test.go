package reconcile

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// vllmText is the shape vLLM's Python client writes (two engines of one
// model, OpenMetrics-era TYPE line without _total, _created samples).
const vllmText = `# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="qwen"} 1200.0
vllm:prompt_tokens_total{engine="1",model_name="qwen"} 300.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="qwen"} 4000.0
vllm:generation_tokens_total{engine="1",model_name="qwen"} 1.0e3
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.76e+09
`

const llamaText = `# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 42
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 99
# TYPE llamacpp:n_decode_total counter
llamacpp:n_decode_total 7
`

func TestParse(t *testing.T) {
	s, err := Parse(strings.NewReader(vllmText), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Models["qwen"]; got != (Counts{1500, 5000}) || !s.Start.Equal(time.Unix(1_760_000_000, 0)) {
		t.Fatalf("vLLM: %+v start %v", s.Models, s.Start)
	}
	if _, err := Parse(strings.NewReader(llamaText), ""); err == nil || !strings.Contains(err.Error(), "MODEL=URL") {
		t.Fatalf("llama.cpp without a model name: %v", err)
	}
	s, err = Parse(strings.NewReader(llamaText), "l")
	if err != nil || s.Models["l"] != (Counts{42, 99}) || !s.Start.IsZero() {
		t.Fatalf("llama.cpp: %+v %v", s, err)
	}
	if _, err := Parse(strings.NewReader("up 1\n"), ""); err == nil {
		t.Fatal("no token counters must be an error")
	}
	if _, err := Parse(strings.NewReader("vllm:generation_tokens_total{model_name=\"x\"} -5\n"), ""); err == nil {
		t.Fatal("a negative count must be an error")
	}
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]Target{
		"localhost:8000":                 {URL: "http://localhost:8000/metrics"},
		"qwen=http://llama:8080/metrics": {URL: "http://llama:8080/metrics", Model: "qwen"},
		"https://v/x/metrics?a=b":        {URL: "https://v/x/metrics?a=b"},
	} {
		got, err := ParseTarget(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "m=", "ftp://x/metrics"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(vllmText, "")
	f.Add(llamaText, "l")
	f.Add("vllm:generation_tokens_total{model_name=\"\"} 1\n", "")
	f.Fuzz(func(t *testing.T, text, model string) {
		s, err := Parse(strings.NewReader(text), model)
		if err != nil {
			return
		}
		for m, c := range s.Models {
			if m == "" || c.Prompt < 0 || c.Generated < 0 {
				t.Fatalf("bad sample %q: %+v", m, c)
			}
		}
	})
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func TestCompare(t *testing.T) {
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	hist := []Sample{
		{Target: "a", Time: at(0), Models: map[string]Counts{"m": {100, 1000}}},
		{Target: "a", Time: at(30), Models: map[string]Counts{"m": {150, 1500}}},
		{Target: "b", Time: at(0), Start: at(-60), Models: map[string]Counts{"m": {10, 800}}},
	}
	cur := []Sample{
		{Target: "a", Time: at(60), Models: map[string]Counts{"m": {200, 2000}}},
		// b restarted at 45: its counter now is what it did since.
		{Target: "b", Time: at(60), Start: at(45), Models: map[string]Counts{"m": {5, 50}}},
		// c started inside the window: its counters are the window.
		{Target: "c", Time: at(60), Start: at(10), Models: map[string]Counts{"n": {7, 70}}},
		{Target: "d", Time: at(60), Models: map[string]Counts{"o": {1, 1}}},
	}
	led := map[string][]TimedCounts{
		"m": {{at(-5), Counts{1, 1}}, {at(20), Counts{150, 1100}}},
		"n": {{at(20), Counts{7, 60}}},
		"x": {{at(20), Counts{1, 2}}},
	}
	rows := Compare(Input{Since: at(5), Until: at(60), Current: cur, History: hist, Ledger: led, Tolerance: Tolerance{Tokens: 5, Fraction: 0.01}})
	got := map[string]Row{}
	for _, r := range rows {
		got[r.Model] = r
	}
	// m: a from 0 (+100 +1000), b reset (+5 +50, lower bound); ledger from 0.
	if r := got["m"]; r.Backend != (Counts{105, 1050}) || r.Ledger != (Counts{150, 1100}) || !r.LowerBound || r.Status != StatusOK {
		t.Errorf("m: %+v", r)
	}
	if r := got["n"]; r.Backend != (Counts{7, 70}) || r.Drift != (Counts{0, 10}) || r.Status != StatusDrift || !r.Since.Equal(at(10)) {
		t.Errorf("n: %+v", r)
	}
	if r := got["o"]; r.Status != StatusNoBaseline {
		t.Errorf("o: %+v", r)
	}
	if r := got["x"]; r.Status != StatusUnwatched || r.Ledger != (Counts{1, 2}) {
		t.Errorf("x: %+v", r)
	}
	if !Drifted(rows) {
		t.Error("Drifted")
	}
	reg := prometheus.NewRegistry()
	if err := Gauges(reg, rows); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`# HELP llmctl_billing_drift_tokens Tokens the backends counted minus tokens the ledger charged, per model, over the last reconciled window (positive: under-billed).
# TYPE llmctl_billing_drift_tokens gauge
llmctl_billing_drift_tokens{kind="generated",model="m"} -50
llmctl_billing_drift_tokens{kind="prompt",model="m"} -45
llmctl_billing_drift_tokens{kind="generated",model="n"} 10
llmctl_billing_drift_tokens{kind="prompt",model="n"} 0
`)); err != nil {
		t.Error(err)
	}
}

func TestTolerance(t *testing.T) {
	tol := Tolerance{Tokens: 16, Fraction: 0.01}
	for _, c := range []struct {
		drift, backend int64
		want           bool
	}{{16, 0, false}, {17, 0, true}, {17, 10_000, false}, {101, 10_000, true}, {-101, 10_000, true}} {
		if got := tol.exceeded(c.drift, c.backend); got != c.want {
			t.Errorf("%+v: %v", c, got)
		}
	}
}

// TestLedgerTokensPages sums more entries than one page on a real SQLite
// ledger: only debits and releases count.
func TestLedgerTokensPages(t *testing.T) {
	ctx := context.Background()
	lg, err := ledger.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	var es []ledger.Entry
	for i := range 5000 + 101 {
		e := ledger.Entry{Key: fmt.Sprint("k", i), TenantID: "t", Kind: ledger.KindDebit, Amount: -1, Model: "m", PromptTokens: 1, CompletionTokens: 2, Time: t0}
		if i%100 == 0 {
			e = ledger.Entry{Key: fmt.Sprint("k", i), TenantID: "t", Kind: ledger.KindCredit, Amount: 5, Time: t0}
		}
		es = append(es, e)
	}
	if _, err := lg.Apply(ctx, es); err != nil {
		t.Fatal(err)
	}
	got, err := LedgerTokens(ctx, lg, t0, t0)
	want := int64(5000 + 101 - (5000+100)/100 - 1)
	if err != nil || int64(len(got["m"])) != want || sumFrom(got["m"], t0) != (Counts{want, 2 * want}) {
		t.Fatalf("%d entries (want %d), %v", len(got["m"]), want, err)
	}
}
