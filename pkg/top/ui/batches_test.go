package ui

import (
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/muesli/termenv"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmctl/llmctl/pkg/top/metrics"
)

// batchGauge registers the gateway's llmctl_batch_progress on f's stand-in
// and sets two running batches, one with failed lines.
func batchGauge(f *fixture) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metrics.BatchProgress, Help: "batch lines"}, []string{"batch", "tenant", "status", "state"})
	f.gw.Registry.MustRegister(g)
	set := func(id, status string, total, completed, failed float64) {
		g.WithLabelValues(id, "ten_acme", status, "total").Set(total)
		g.WithLabelValues(id, "ten_acme", status, "completed").Set(completed)
		g.WithLabelValues(id, "ten_acme", status, "failed").Set(failed)
	}
	set("batch_18ef0000000000000000000000aaaa01", "in_progress", 10000, 2480, 20)
	set("batch_18ef0000000000000000000000bbbb02", "validating", 0, 0, 0)
}

// The traffic pane lists the running batches with their progress, and
// says nothing of batches when none runs.
func TestTrafficBatches(t *testing.T) {
	f := newFixture(t, nil, termenv.Ascii)
	f.m.Update(tea.WindowSizeMsg{Width: 160, Height: 30})
	f.traffic()
	if v := f.view(); strings.Contains(v, "batches") {
		t.Fatalf("batches line without batches:\n%s", v)
	}
	batchGauge(f)
	f.scrape()
	b := strings.Join(line(t, f.view(), "batches"), " ")
	for _, want := range []string{"batches 2", "…00aaaa01 in_progress 2500/10000 25% (20 failed)", "…00bbbb02 validating 0/0 0%"} {
		if !strings.Contains(b, want) {
			t.Errorf("batches line %q lacks %q", b, want)
		}
	}
	// A narrow pane counts what does not fit.
	f.m.Update(tea.WindowSizeMsg{Width: 72, Height: 30})
	if b := strings.Join(line(t, f.view(), "batches"), " "); !strings.Contains(b, "… 1 more") {
		t.Errorf("narrow batches line %q", b)
	}
}

func TestGoldenBatches(t *testing.T) {
	f := newFixture(t, ledgerDB(t), termenv.Ascii)
	batchGauge(f)
	_, tm := screenOf(t, f, 120, 34)
	golden.RequireEqual(t, finalView(t, tm))
}
