package ui

import (
	"fmt"
	"sort"
	"strings"

	"github.com/llmctl/llmctl/pkg/top"
	"github.com/llmctl/llmctl/pkg/top/metrics"
)

// trafficPane shows requests, latency and tokens per model, the backends
// and the targets' health.
type trafficPane struct {
	filter  string
	sortCol int
	asc     bool
}

var trafficSorts = []string{"req/s", "model", "p99", "tok/s out", "5xx"}

func (p *trafficPane) sortName() string { return trafficSorts[p.sortCol] }

func (p *trafficPane) cycleSort() { p.sortCol = (p.sortCol + 1) % len(trafficSorts) }

func (p *trafficPane) models(tr metrics.Traffic) []metrics.ModelStats {
	var ms []metrics.ModelStats
	f := strings.ToLower(p.filter)
	for _, m := range tr.Models {
		if f == "" || strings.Contains(strings.ToLower(m.Model), f) {
			ms = append(ms, m)
		}
	}
	key := func(m metrics.ModelStats) float64 {
		switch p.sortCol {
		case 0:
			return m.RPS
		case 2:
			return m.P99
		case 3:
			return m.TokensOutPS
		case 4:
			return m.ErrorRatio
		}
		return 0
	}
	sort.SliceStable(ms, func(i, j int) bool {
		a, b := ms[i], ms[j]
		if p.sortCol != 1 && key(a) != key(b) {
			// Numbers sort biggest first unless reversed.
			return (key(a) > key(b)) != p.asc
		}
		return (a.Model < b.Model) != (p.sortCol == 1 && p.asc)
	})
	return ms
}

// view draws the pane in at most height lines.
func (p *trafficPane) view(mon *top.Monitor, st *styles, width, height int) []string {
	var out []string
	targets := mon.Targets()
	if len(targets) == 0 {
		if mon.Dynamic {
			return []string{st.dim.Render("  no running gateway pods found")}
		}
		return []string{st.dim.Render("  no targets: pass --target URL (a gateway's admin /metrics)")}
	}
	var down []string
	for _, t := range targets {
		if !t.Up && t.Error != "" {
			// Wrapped, not clipped: the end of an error says what happened.
			for i, part := range wrap(t.Error, max(width-6, 20)) {
				mark := "    "
				if i == 0 {
					mark = "  ✗ "
				}
				down = append(down, st.bad.Render(mark)+st.plain.Render(part))
			}
		}
	}
	if !mon.Warm {
		out = append(out, st.dim.Render("  waiting for two scrapes of a target to compute rates…"))
		return append(out, down...)
	}
	tr := mon.Traffic
	ms := p.models(tr)

	nameW := 8
	for _, m := range ms {
		nameW = max(nameW, len(m.Model))
	}
	nameW = min(nameW, 28)
	cols := []column{
		{title: "MODEL", width: nameW},
		{title: "REQ/S", width: 7, right: true},
		{title: "P50", width: 6, right: true},
		{title: "P99", width: 6, right: true},
		{title: "TTFT50", width: 6, right: true},
		{title: "TTFT99", width: 6, right: true},
		{title: "TOK/S IN", width: 8, right: true},
		{title: "TOK/S OUT", width: 9, right: true},
		{title: "5XX", width: 6, right: true},
		{title: "429", width: 6, right: true},
		{title: "QUEUED", width: 6, right: true},
	}
	used := 0
	for _, c := range cols {
		used += c.width + 1
	}
	histW := width - used - 2
	if histW >= 6 {
		cols = append(cols, column{title: "REQ/S HISTORY", width: histW})
	}
	sortIdx := map[int]int{0: 1, 1: 0, 2: 3, 3: 7, 4: 8}[p.sortCol]
	arrow := "▼"
	if p.asc {
		arrow = "▲"
	}
	cols[sortIdx].title += arrow

	row := func(name string, s metrics.Stats, hist []float64, nameStyle bool) []cell {
		ns := st.plain
		if nameStyle {
			ns = st.title
		}
		r := []cell{
			{name, ns},
			{fmtRate(s.RPS), st.plain},
			{fmtSecs(s.P50, s.Samples), st.plain},
			{fmtSecs(s.P99, s.Samples), st.level(s.P99, 2, 10)},
			{fmtSecs(s.TTFTP50, s.TTFTSamples), st.plain},
			{fmtSecs(s.TTFTP99, s.TTFTSamples), st.level(s.TTFTP99, 1, 5)},
			{fmtRate(s.TokensInPS), st.plain},
			{fmtRate(s.TokensOutPS), st.plain},
			{fmtPct(s.ErrorRatio), st.level(s.ErrorRatio, 0.01, 0.05)},
			{fmtPct(s.LimitedRatio), st.level(s.LimitedRatio, 0.05, 0.25)},
			// A count now, not a rate: requests waiting for a backend slot.
			{fmt.Sprintf("%.0f", s.Queued), st.level(s.Queued, 1, 1e9)},
		}
		if histW >= 6 {
			r = append(r, cell{sparkline(hist, histW), st.ok})
		}
		return r
	}
	rows := [][]cell{row("all", tr.Overall, mon.History.RPS.Last(histW), true)}
	queue := append(queueLine(tr, st), batchesLine(tr, st, width)...) // batches.go
	// Keep room for backends and down targets below the models.
	room := height - 4 - len(tr.Backends) - len(down) - 2 - len(queue)
	for i, m := range ms {
		if i >= room && room >= 0 {
			rows = append(rows, []cell{{fmt.Sprintf("… %d more", len(ms)-i), st.dim}})
			break
		}
		rows = append(rows, row(m.Model, m.Stats, mon.PerModel[m.Model].Last(histW), false))
	}
	for _, l := range table(st, cols, rows) {
		out = append(out, "  "+l)
	}
	if p.filter != "" {
		out = append(out, st.dim.Render(fmt.Sprintf("  filter %q: %d of %d models", p.filter, len(ms), len(tr.Models))))
	}

	inflight := fmt.Sprintf("  in flight %s   ", fmtRate(tr.InFlight))
	sw := max((width-len(inflight)-40)/2, 4)
	out = append(out, st.plain.Render(inflight)+
		st.dim.Render("p99 ")+st.warn.Render(sparkline(mon.History.P99.Last(sw), sw))+
		st.dim.Render("   tok/s out ")+st.ok.Render(sparkline(mon.History.TokensOut.Last(sw), sw))+
		st.dim.Render("   errors ")+st.bad.Render(sparkline(mon.History.Errors.Last(min(sw, 12)), min(sw, 12))))
	out = append(out, queue...)

	if len(tr.Backends) > 0 {
		bcols := []column{{title: "BACKEND", width: max(nameW, 12)}, {title: "STATE", width: 5}, {title: "IN-FLIGHT", width: 9, right: true}, {title: "REQ/S", width: 7, right: true}, {title: "ERR/S", width: 7, right: true}}
		var brows [][]cell
		for _, b := range tr.Backends {
			state := cell{"up", st.ok}
			switch {
			case !b.Reported:
				state = cell{"?", st.dim}
			case !b.Up:
				state = cell{"DOWN", st.bad}
			}
			brows = append(brows, []cell{{b.Name, st.plain}, state, {fmtRate(b.InFlight), st.plain}, {fmtRate(b.RPS), st.plain}, {fmtRate(b.ErrorsPS), st.level(b.ErrorsPS, 0.01, 1)}})
		}
		for _, l := range table(st, bcols, brows) {
			out = append(out, "  "+l)
		}
	}
	return append(out, down...)
}

// queueLine says what the admission queue did in the interval: its wait
// p99, its 429 refusals and the fallbacks by from→to model. Nothing when
// none of these happened (or the gateway predates the queue), so a quiet
// gateway's pane does not grow.
func queueLine(tr metrics.Traffic, st *styles) []string {
	o := tr.Overall
	if o.QueueWaitSamples == 0 && o.QueueRefusedPS == 0 && len(tr.Fallbacks) == 0 {
		return nil
	}
	l := st.dim.Render("  queue  wait p99 ") + st.level(o.QueueWaitP99, 1, 10).Render(fmtSecs(o.QueueWaitP99, o.QueueWaitSamples)) +
		st.dim.Render("   refused/s ") + st.level(o.QueueRefusedPS, 0.01, 1).Render(fmtRate(o.QueueRefusedPS))
	if len(tr.Fallbacks) > 0 {
		l += st.dim.Render("   fallbacks/s")
		for _, f := range tr.Fallbacks {
			l += st.plain.Render(fmt.Sprintf(" %s→%s %s", f.From, f.To, fmtRate(f.PS)))
		}
	}
	return []string{l}
}
