package ui

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/llmctl/llmctl/pkg/top"
	"github.com/llmctl/llmctl/pkg/top/metrics"
	"github.com/llmctl/llmctl/pkg/top/toptest"
)

// BenchmarkRefresh is the work of one refresh after the bytes arrived:
// parse, delta, summarize, fold into the Monitor and draw the screen, for a
// gateway with 8 models and 4 backends. The baseline, measured in the same
// run, is expfmt parsing alone; the ratio says what top adds on top of it.
func BenchmarkRefresh(b *testing.B) {
	gw := toptest.NewGateway()
	for i := 0; i < 4; i++ {
		gw.Up.WithLabelValues(fmt.Sprintf("backend-%d", i)).Set(1)
	}
	serve := func() {
		for i := 0; i < 8; i++ {
			gw.Serve(fmt.Sprintf("model-%d", i), "200", fmt.Sprintf("backend-%d", i%4), 5, 0.2, 0.05, 100, 30)
			gw.Serve(fmt.Sprintf("model-%d", i), "429", "", 1, 0.001, 0, 0, 0)
		}
	}
	body := func() []byte {
		rec := httptest.NewRecorder()
		gw.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.Bytes()
	}
	serve()
	a := body()
	serve()
	c := body()

	r := lipgloss.NewRenderer(nil)
	r.SetColorProfile(termenv.ANSI256)
	m := New(context.Background(), Options{Sources: &top.Sources{Targets: []string{"t"}}, Renderer: r, Now: func() time.Time { return t0 }})
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 50})
	at := t0

	var parse, full time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		at = at.Add(time.Second)
		src := a
		if i%2 == 1 {
			src = c
		}
		start := time.Now()
		if _, err := metrics.Parse(bytes.NewReader(src), at); err != nil {
			b.Fatal(err)
		}
		parse += time.Since(start)

		start = time.Now()
		sc, err := metrics.Parse(bytes.NewReader(src), at)
		if err != nil {
			b.Fatal(err)
		}
		m.Update(scrapeMsg{{URL: "t", Scrape: sc}})
		_ = m.View()
		full += time.Since(start)
	}
	b.ReportMetric(float64(full.Nanoseconds())/float64(b.N), "ns/refresh")
	b.ReportMetric(float64(parse.Nanoseconds())/float64(b.N), "ns/parse-baseline")
	b.ReportMetric(float64(full)/float64(parse), "x-baseline")
}
