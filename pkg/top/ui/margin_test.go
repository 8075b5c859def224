package ui

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/muesli/termenv"

	"github.com/llmctl/llmctl/pkg/billing/margin"
	"github.com/llmctl/llmctl/pkg/top/ledgersource"
)

var golfCosts = margin.Costs{GPUMonthly: "450", OtherMonthly: "30.5", ElectricityPerKWh: "0.30"}

func keyM() tea.KeyMsg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("m")} }

// TestGoldenMargin: `m` swaps the ledger pane for the Margin pane, read
// from a real SQLite ledger priced with fixed costs. By hand, as `llmctl
// ledger margin` computes it: 480.5 × 24 h / 730 h = 15.797260; acme
// generated 1800 of 11800 tokens: 2.409751|52 and globex 13.387508|47, the
// leftover micro-unit to acme's larger remainder; revenue 6 × 0.1234 and
// 5 × 1.50 (globex's sixth debit is 25 h old).
func TestGoldenMargin(t *testing.T) {
	src := ledgerDB(t)
	f := newFixture(t, src, termenv.Ascii)
	f.src.Margin = ledgersource.Margins{Source: src, Costs: golfCosts}
	_, tm := screenOf(t, f, 120, 34)
	tm.Send(keyM())
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("TOTAL")) },
		teatest.WithDuration(30*time.Second))
	golden.RequireEqual(t, finalView(t, tm))
}

func TestMarginUpdate(t *testing.T) {
	src := ledgerDB(t)
	f := newFixture(t, src, termenv.Ascii)
	f.m.Update(tea.WindowSizeMsg{Width: 120, Height: 30})
	f.src.Margin = ledgersource.Margins{Source: src} // no costs

	// m focuses the bottom slot and shows Margin; its read is a Cmd.
	_, cmd := f.m.Update(keyM())
	if f.m.focus != paneLedger || !f.m.margin.shown || cmd == nil {
		t.Fatalf("after m: focus %d shown %v cmd %v", f.m.focus, f.m.margin.shown, cmd)
	}
	if v := f.view(); !strings.Contains(v, "[Margin]") || !strings.Contains(v, "loading…") {
		t.Fatalf("before the read:\n%s", v)
	}
	if _, again := f.m.Update(keyM()); again != nil {
		t.Fatal("m again: want back to the ledger, no read")
	}
	if f.m.margin.shown {
		t.Fatal("m twice: the ledger should be back")
	}
	f.m.Update(keyM())
	msg := cmd()
	f.m.Update(msg)
	v := f.view()
	for _, want := range []string{
		// acme: six debits of 0.1234 and a release; globex: five of 1.50 in the day.
		"acme", "0.740400", "globex", "7.500000", "TOTAL", "8.240400",
		ledgersource.NoCosts[:40],
	} {
		if !strings.Contains(v, want) {
			t.Errorf("margin view lacks %q:\n%s", want, v)
		}
	}
	if strings.Contains(v, "tokens per joule") {
		t.Errorf("tokens per joule without energy:\n%s", v)
	}

	// With energy the box's tokens per joule shows; an error keeps the
	// last report and says so.
	rep, err := margin.Compute(golfCosts, t0.Add(-time.Hour), t0, []margin.Usage{{TenantID: "x", Model: "llama", Revenue: 2_000_000, Generated: 9000}},
		margin.Energy{Measured: true, Joules: 3_600_000}, map[string]string{"x": "acme"})
	if err != nil {
		t.Fatal(err)
	}
	f.m.margin.reading = true
	f.m.Update(marginMsg{report: rep})
	v = f.view()
	// 1 kWh at 0.30 plus 480.5 × 1 h / 730 = 0.658219: cost 0.958219.
	for _, want := range []string{"tokens per joule 0.003", "0.958219", "1.041781", "electricity 1.000 kWh measured"} {
		if !strings.Contains(v, want) {
			t.Errorf("lacks %q:\n%s", want, v)
		}
	}
	f.m.Update(marginMsg{err: context.DeadlineExceeded})
	if v = f.view(); !strings.Contains(v, "deadline exceeded") || !strings.Contains(v, "1.041781") {
		t.Errorf("after a failed read:\n%s", v)
	}
	if f.m.margin.reading {
		t.Error("reading still set")
	}

	// Filter applies to the Margin pane while it is shown.
	f.m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("/")})
	for _, r := range "zzz" {
		f.m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
	f.m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	if f.m.margin.filter != "zzz" || f.m.ledger.filter != "" || strings.Contains(f.view(), "acme") {
		t.Errorf("filter: margin %q ledger %q\n%s", f.m.margin.filter, f.m.ledger.filter, f.view())
	}
}

func TestMarginNoLedger(t *testing.T) {
	f := newFixture(t, nil, termenv.Ascii)
	f.m.Update(tea.WindowSizeMsg{Width: 120, Height: 30})
	if _, cmd := f.m.Update(keyM()); cmd != nil {
		t.Error("a read without a ledger")
	}
	if v := f.view(); !strings.Contains(v, "[Margin]") || !strings.Contains(v, "no ledger: pass --db") {
		t.Errorf("no ledger:\n%s", v)
	}
}
