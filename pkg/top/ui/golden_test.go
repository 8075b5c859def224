package ui

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/muesli/termenv"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/top/ledgersource"
	"github.com/llmctl/llmctl/pkg/top/toptest"
)

// ledgerDB is a real SQLite billing database with three tenants and
// entries dated relative to t0, the screen's clock.
func ledgerDB(t *testing.T) *ledgersource.Source {
	t.Helper()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")
	toptest.Ledger(t, dsn, []string{"acme", "globex", "initech"}, func(ids map[string]string) []ledger.Entry {
		var es []ledger.Entry
		add := func(tenant string, kind ledger.Kind, amt ledger.Micros, ago time.Duration, model string, in, out int64) {
			es = append(es, ledger.Entry{Key: fmt.Sprintf("e%d", len(es)), TenantID: ids[tenant], Kind: kind, Amount: amt,
				Model: model, PromptTokens: in, CompletionTokens: out, Time: t0.Add(-ago)})
		}
		add("acme", ledger.KindCredit, 50*ledger.Unit, 72*time.Hour, "", 0, 0)
		add("globex", ledger.KindCredit, 5*ledger.Unit, 72*time.Hour, "", 0, 0)
		for i := 0; i < 6; i++ {
			add("acme", ledger.KindDebit, -123_400, time.Duration(i)*20*time.Minute+time.Minute, "llama", 1200, 300)
			add("globex", ledger.KindDebit, -1_500_000, time.Duration(i)*5*time.Hour+time.Minute, "qwen", 8000, 2000)
		}
		add("acme", ledger.KindRelease, 0, 2*time.Minute, "llama", 0, 0)
		add("acme", ledger.KindAdjustment, 2*ledger.Unit, 90*time.Minute, "", 0, 0)
		es[len(es)-1].Reason = "refund ticket 42"
		return es
	})
	src, closeFn, err := ledgersource.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFn() })
	return src
}

// screen starts the program at a fixed size and profile, waits for the
// first reads, then plays six scrape rounds of traffic.
func screen(t *testing.T, profile termenv.Profile, w, h int) (*fixture, *teatest.TestModel) {
	return screenOf(t, newFixture(t, ledgerDB(t), profile), w, h)
}

// screenOf is screen with the fixture built by the caller.
func screenOf(t *testing.T, f *fixture, w, h int) (*fixture, *teatest.TestModel) {
	f.gw.Up.WithLabelValues("gpu-box").Set(1)
	f.gw.Up.WithLabelValues("cpu-engine").Set(0)
	f.gw.BInF.WithLabelValues("gpu-box").Set(3)
	f.gw.InFlight.WithLabelValues("chat").Set(3)
	f.gw.SetGPU("0", 0.87, 7.1*(1<<30), 8*(1<<30), 71, 162)
	f.gw.Queue.WithLabelValues("qwen2.5-7b", "normal").Set(4)
	f.gw.Queue.WithLabelValues("qwen2.5-7b", "low").Set(2)
	f.gw.Queue.WithLabelValues("llama-3.1-8b-q4", "normal").Set(0)
	tm := teatest.NewTestModel(t, f.m, teatest.WithInitialTermSize(w, h))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		return bytes.Contains(b, []byte("1/1 targets up")) && bytes.Contains(b, []byte("globex"))
	}, teatest.WithDuration(30*time.Second))
	for i := 1; i <= 6; i++ {
		f.gw.Serve("llama-3.1-8b-q4", "200", "gpu-box", 8+i, 0.2+0.05*float64(i), 0.09, 420, 180)
		f.gw.Serve("qwen2.5-7b", "200", "gpu-box", 3, 0.6, 0.15, 900, 260)
		f.gw.Serve("qwen2.5-7b", "429", "", 1+i%3, 0.002, 0, 0, 0)
		if i >= 4 {
			f.gw.Serve("llama-3.1-8b-q4", "502", "cpu-engine", 2, 0.03, 0, 420, 0)
			f.gw.UpErrs.WithLabelValues("cpu-engine", "connect").Add(2)
			f.gw.Fallbacks.WithLabelValues("llama-3.1-8b-q4", "llama-cpu").Add(1)
		}
		f.gw.QueueWait.WithLabelValues("qwen2.5-7b", "normal").Observe(0.4)
		f.gw.QueueRefused.WithLabelValues("qwen2.5-7b", "full").Add(float64(1 + i%3))
		tm.Send(scrapeMsg(f.src.ScrapeAll(context.Background())))
	}
	return f, tm
}

func finalView(t *testing.T, tm *teatest.TestModel) []byte {
	t.Helper()
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("q")})
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(30*time.Second))
	return []byte(fm.View())
}

func TestGoldenDefaultScreen(t *testing.T) {
	_, tm := screen(t, termenv.Ascii, 120, 34)
	golden.RequireEqual(t, finalView(t, tm))
}

func TestGoldenDefaultScreenColour(t *testing.T) {
	_, tm := screen(t, termenv.ANSI256, 120, 34)
	golden.RequireEqual(t, finalView(t, tm))
}

func TestGoldenSmallTerminal(t *testing.T) {
	_, tm := screen(t, termenv.Ascii, 120, 34)
	tm.Send(tea.WindowSizeMsg{Width: 72, Height: 20})
	golden.RequireEqual(t, finalView(t, tm))
}

func TestGoldenTenantEntries(t *testing.T) {
	_, tm := screen(t, termenv.Ascii, 120, 34)
	tm.Send(tea.KeyMsg{Type: tea.KeyTab})
	tm.Send(tea.KeyMsg{Type: tea.KeyTab})
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("/")})
	tm.Type("acme")
	tm.Send(tea.KeyMsg{Type: tea.KeyEnter}) // apply the filter
	tm.Send(tea.KeyMsg{Type: tea.KeyEnter}) // drill into acme
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("refund ticket 42")) },
		teatest.WithDuration(30*time.Second))
	golden.RequireEqual(t, finalView(t, tm))
}

func TestGoldenLedgerFocusedSortedByBalance(t *testing.T) {
	_, tm := screen(t, termenv.Ascii, 120, 34)
	tm.Send(tea.KeyMsg{Type: tea.KeyShiftTab})                  // Traffic → Ledger
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("s")}) // tenant
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("s")}) // balance
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("j")}) // second row
	golden.RequireEqual(t, finalView(t, tm))
}
