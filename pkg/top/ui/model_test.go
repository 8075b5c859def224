package ui

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/llmctl/llmctl/pkg/top"
	"github.com/llmctl/llmctl/pkg/top/metrics"
	"github.com/llmctl/llmctl/pkg/top/toptest"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// fixture is a model over a real /metrics endpoint with a stepping clock.
type fixture struct {
	gw  *toptest.Gateway
	url string
	src *top.Sources
	m   *Model
}

func newFixture(t *testing.T, ledger top.LedgerSource, profile termenv.Profile) *fixture {
	t.Helper()
	gw := toptest.NewGateway()
	srv := gw.Server()
	t.Cleanup(srv.Close)
	clk := &toptest.Clock{T: t0, Step: time.Second}
	src := &top.Sources{
		Targets: []string{srv.URL + "/metrics"},
		Scraper: &metrics.Scraper{Client: srv.Client(), Now: clk.Now},
		Ledger:  ledger,
	}
	r := lipgloss.NewRenderer(nil)
	r.SetColorProfile(profile)
	m := New(context.Background(), Options{Sources: src, Interval: time.Hour, LedgerEvery: 1, Renderer: r, Now: func() time.Time { return t0 }})
	return &fixture{gw: gw, url: srv.URL + "/metrics", src: src, m: m}
}

// scrape runs the scrape Cmd's IO and hands its message to Update.
func (f *fixture) scrape() { f.m.Update(scrapeMsg(f.src.ScrapeAll(context.Background()))) }

func (f *fixture) view() string { return ansi.Strip(f.m.View()) }

// traffic drives two scrapes with 10 llama requests (one 502) and 2 qwen
// requests (both 429) in between.
func (f *fixture) traffic() {
	f.gw.Up.WithLabelValues("gpu-box").Set(1)
	f.gw.SetGPU("0", 0.42, 6<<30, 8<<30, 61, 140)
	f.scrape()
	f.gw.Serve("llama", "200", "gpu-box", 9, 0.3, 0.08, 100, 50)
	f.gw.Serve("llama", "502", "gpu-box", 1, 0.3, 0, 100, 0)
	f.gw.Serve("qwen", "429", "", 2, 0.001, 0, 0, 0)
	f.scrape()
}

func line(t *testing.T, view, prefix string) []string {
	t.Helper()
	for _, l := range strings.Split(view, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == prefix {
			return f
		}
	}
	t.Fatalf("no line starting with %q in\n%s", prefix, view)
	return nil
}

func TestTrafficNumbers(t *testing.T) {
	f := newFixture(t, nil, termenv.Ascii)
	f.m.Update(tea.WindowSizeMsg{Width: 120, Height: 30})
	if v := f.view(); !strings.Contains(v, "waiting for two scrapes") {
		t.Fatalf("before any window:\n%s", v)
	}
	f.traffic()
	v := f.view()
	// MODEL REQ/S P50 P99 TTFT50 TTFT99 TOK/S-IN TOK/S-OUT 5XX 429.
	// Latency buckets ..0.05, 0.1, 0.25, 0.5..: 2 samples in the first, 10
	// in (0.25,0.5]. p50 = rank 6: 0.25+0.25*(6-2)/10 = 350ms; p99 = rank
	// 11.88: 0.25+0.25*9.88/10 = 497ms. TTFT: 9 in (0.05,0.1]: p50 =
	// 0.05+0.05*4.5/9, p99 = 0.05+0.05*8.91/9 = 99.5ms.
	all := line(t, v, "all")
	if want := []string{"all", "12.0", "350ms", "497ms", "75ms", "100ms", "1000", "450.0", "8.3%", "16.7%"}; strings.Join(all[:10], " ") != strings.Join(want, " ") {
		t.Errorf("overall row = %v, want %v\n%s", all[:10], want, v)
	}
	ll := line(t, v, "llama")
	if ll[1] != "10.0" || ll[8] != "10.0%" {
		t.Errorf("llama row = %v", ll)
	}
	qw := line(t, v, "qwen")
	if qw[1] != "2.00" || qw[2] != "25ms" || qw[4] != "-" || qw[9] != "100.0%" {
		t.Errorf("qwen row = %v", qw)
	}
	if b := line(t, v, "gpu-box"); b[1] != "up" {
		t.Errorf("backend row = %v", b)
	}
	if g := line(t, v, "0"); g[1] != "42%" || g[3] != "6.0/8.0" || g[5] != "61°C" || g[6] != "140W" {
		t.Errorf("gpu row = %v", g)
	}
	if !strings.Contains(v, "from gateway gauges") || !strings.Contains(v, "1/1 targets up") {
		t.Errorf("header/gpu source missing:\n%s", v)
	}
	if !strings.Contains(v, "no ledger: pass --db") {
		t.Errorf("ledger note missing:\n%s", v)
	}
}

func TestUnreachableTargetShownAndRecovered(t *testing.T) {
	f := newFixture(t, nil, termenv.Ascii)
	f.traffic()
	gone := errors.New("scrape " + f.url + ": dial tcp: connection refused")
	f.m.Update(scrapeMsg{{URL: f.url, Err: gone}})
	v := f.view()
	if !strings.Contains(v, "0/1 targets up") || !strings.Contains(v, "connection refused") {
		t.Fatalf("down target not shown:\n%s", v)
	}
	if strings.Contains(v, "REQ/S") {
		t.Errorf("stale rates shown for a down target:\n%s", v)
	}
	// A narrow terminal wraps the error rather than cutting off its end.
	f.m.Update(tea.WindowSizeMsg{Width: 50, Height: 30})
	if v := f.view(); !strings.Contains(v, "refused") {
		t.Errorf("error cut at 50 columns:\n%s", v)
	}
	f.m.Update(tea.WindowSizeMsg{Width: 120, Height: 30})
	// Back: one scrape is a baseline, the next a window.
	f.scrape()
	if v := f.view(); !strings.Contains(v, "1/1 targets up") || strings.Contains(v, "connection refused") {
		t.Fatalf("recovery not shown:\n%s", v)
	}
	f.gw.Serve("llama", "200", "gpu-box", 3, 0.1, 0, 1, 1)
	f.scrape()
	if all := line(t, f.view(), "all"); all[1] != "3.00" {
		t.Errorf("rate after recovery = %v, want 3.00 (only the new window)", all)
	}
}

func TestRealUnreachableTarget(t *testing.T) {
	// A real closed port, through the Cmd the model issues.
	f := newFixture(t, nil, termenv.Ascii)
	srv := toptest.NewGateway().Server()
	url := srv.URL + "/metrics"
	srv.Close()
	f.src.Targets = []string{url}
	f.src.Scraper = &metrics.Scraper{Client: http.DefaultClient}
	m := New(context.Background(), Options{Sources: f.src, Interval: time.Hour, Now: func() time.Time { return t0 }})
	msg := runCmd(t, m.refresh(false))
	m.Update(msg)
	v := ansi.Strip(m.View())
	if !strings.Contains(v, "0/1 targets up") || !strings.Contains(v, url) {
		t.Fatalf("closed port:\n%s", v)
	}
}

// runCmd runs a Cmd (and the first Cmd of a batch) and returns its message.
func runCmd(t *testing.T, c tea.Cmd) tea.Msg {
	t.Helper()
	if c == nil {
		t.Fatal("nil Cmd")
	}
	msg := c()
	if b, ok := msg.(tea.BatchMsg); ok {
		return runCmd(t, b[0])
	}
	return msg
}

func TestTickRearmsAndDoesNotStackScrapes(t *testing.T) {
	f := newFixture(t, nil, termenv.Ascii)
	_, cmd := f.m.Update(tickMsg(t0))
	if !f.m.scraping {
		t.Fatal("tick did not start a scrape")
	}
	b, ok := cmd().(tea.BatchMsg)
	if !ok || len(b) < 2 {
		t.Fatalf("tick: want a batch of reads and the next tick, got %T", cmd())
	}
	// While the scrape is out, another tick issues no read (and re-arms).
	if c := f.m.refresh(false); c != nil {
		t.Fatal("a second scrape was issued while one is in flight")
	}
	if _, cmd = f.m.Update(tickMsg(t0)); cmd == nil {
		t.Fatal("tick not re-armed")
	}
	f.m.Update(scrapeMsg(f.src.ScrapeAll(context.Background())))
	if f.m.scraping {
		t.Fatal("scrape result did not clear the in-flight flag")
	}
}

func TestKeys(t *testing.T) {
	f := newFixture(t, nil, termenv.Ascii)
	f.m.Update(tea.WindowSizeMsg{Width: 120, Height: 30})
	f.traffic()
	press := func(keys ...string) tea.Cmd {
		var c tea.Cmd
		for _, k := range keys {
			var msg tea.KeyMsg
			switch k {
			case "tab":
				msg = tea.KeyMsg{Type: tea.KeyTab}
			case "enter":
				msg = tea.KeyMsg{Type: tea.KeyEnter}
			case "esc":
				msg = tea.KeyMsg{Type: tea.KeyEsc}
			default:
				msg = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
			}
			_, c = f.m.Update(msg)
		}
		return c
	}
	order := func() string {
		var names []string
		for _, l := range strings.Split(f.view(), "\n") {
			if fs := strings.Fields(l); len(fs) > 0 && (fs[0] == "llama" || fs[0] == "qwen") {
				names = append(names, fs[0])
			}
		}
		return strings.Join(names, ",")
	}
	if o := order(); o != "llama,qwen" {
		t.Fatalf("default order (req/s desc) = %s", o)
	}
	press("S")
	if o := order(); o != "qwen,llama" {
		t.Fatalf("S reverses: %s", o)
	}
	press("s") // by model name, ascending unless reversed
	if !strings.Contains(f.view(), "sort: model") {
		t.Fatalf("s did not move the sort column:\n%s", f.view())
	}
	press("S")
	press("/", "q", "w")
	if o := order(); o != "qwen" {
		t.Fatalf("filter qw while typing: %s", o)
	}
	press("enter")
	if !strings.Contains(f.view(), "filter: qw") {
		t.Fatalf("filter not applied:\n%s", f.view())
	}
	press("esc")
	if o := order(); o != "llama,qwen" {
		t.Fatalf("esc clears the filter: %s", o)
	}
	press("?")
	if !strings.Contains(f.view(), "switch pane") {
		t.Fatalf("help not shown:\n%s", f.view())
	}
	press("esc")
	press("tab")
	if f.m.focus != paneGPU {
		t.Fatalf("tab: focus %v", f.m.focus)
	}
	if c := press("q"); c == nil || c() != tea.Quit() {
		t.Fatal("q does not quit")
	}
}
