// Package ui is `llmctl top`'s terminal interface: one bubbletea root model
// composed of a traffic, a GPU and a ledger pane (`m` swaps in the margin
// pane). Every read happens inside a tea.Cmd (through top.Sources); Update
// only folds results into the top.Monitor and never blocks. Refresh is a
// tea.Tick re-armed on every tick.
package ui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/llmctl/llmctl/pkg/top"
	"github.com/llmctl/llmctl/pkg/top/metrics"
)

// Options configure the model.
type Options struct {
	Sources  *top.Sources
	Interval time.Duration // refresh; default 1 s
	// LedgerEvery reads the ledger every n ticks: it is a database query,
	// and balances move slower than request rates. Default 5.
	LedgerEvery int
	// EntriesLimit is how many entries the drill-down shows. Default 50.
	EntriesLimit int
	// Renderer fixes the colour profile (tests, NO_COLOR); the default
	// renderer of stdout when nil.
	Renderer *lipgloss.Renderer
	Now      func() time.Time // the header clock; time.Now when nil
}

type pane int

const (
	paneTraffic pane = iota
	paneGPU
	paneLedger
	paneCount
)

var paneNames = [paneCount]string{"Traffic", "GPU", "Ledger"}

// Messages: the results of the Cmds, and the tick.
type (
	tickMsg   time.Time
	scrapeMsg []top.ScrapeResult
	gpuMsg    struct {
		gpus []metrics.GPU
		err  error
	}
	tenantsMsg struct {
		rows []top.TenantRow
		err  error
	}
	entriesMsg struct {
		tenantID string
		entries  []top.Entry
		err      error
	}
)

// Model is the root model.
type Model struct {
	ctx  context.Context
	opts Options
	src  *top.Sources
	mon  *top.Monitor
	st   *styles
	keys keyMap
	help help.Model

	width, height int
	focus         pane
	showHelp      bool
	filtering     bool
	input         textinput.Model

	traffic trafficPane
	ledger  ledgerPane
	margin  marginPane

	ticks                         int
	scraping, reading, readingGPU bool
}

// New builds the model. ctx bounds every Cmd's IO.
func New(ctx context.Context, o Options) *Model {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.LedgerEvery <= 0 {
		o.LedgerEvery = 5
	}
	if o.EntriesLimit <= 0 {
		o.EntriesLimit = 50
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := o.Renderer
	if r == nil {
		r = lipgloss.DefaultRenderer()
	}
	src := o.Sources
	if src == nil {
		src = &top.Sources{}
	}
	in := textinput.New()
	in.Prompt = "/"
	in.CharLimit = 64
	mon := top.NewMonitor(src.Targets, src.Ledger != nil)
	mon.Dynamic = src.Discover != nil
	m := &Model{
		ctx: ctx, opts: o, src: src,
		mon:   mon,
		st:    newStyles(r),
		keys:  newKeyMap(),
		help:  help.New(),
		input: in,
		width: 100, height: 30,
	}
	m.help.Styles.ShortKey = m.st.key
	m.help.Styles.FullKey = m.st.key
	m.help.Styles.ShortDesc = m.st.dim
	m.help.Styles.FullDesc = m.st.dim
	m.help.Styles.ShortSeparator = m.st.dim
	m.help.Styles.FullSeparator = m.st.dim
	return m
}

// Monitor exposes the state (tests, --once).
func (m *Model) Monitor() *top.Monitor { return m.mon }

// Init starts the first reads and the tick.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.refresh(true), m.tick())
}

func (m *Model) tick() tea.Cmd {
	return tea.Tick(m.opts.Interval, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// refresh issues the reads that are due and not already running: a slow
// target never stacks up scrapes.
func (m *Model) refresh(ledgerDue bool) tea.Cmd {
	var cmds []tea.Cmd
	if !m.scraping && (len(m.src.Targets) > 0 || m.src.Discover != nil) {
		m.scraping = true
		cmds = append(cmds, func() tea.Msg { return scrapeMsg(m.src.ScrapeAll(m.ctx)) })
	}
	if !m.readingGPU && m.src.GPU != nil {
		m.readingGPU = true
		cmds = append(cmds, func() tea.Msg {
			gs, err := m.src.ReadGPUs(m.ctx)
			return gpuMsg{gs, err}
		})
	}
	if ledgerDue && !m.reading && m.src.Ledger != nil {
		m.reading = true
		now := m.opts.Now()
		cmds = append(cmds, func() tea.Msg {
			rows, err := m.src.ReadTenants(m.ctx, now)
			return tenantsMsg{rows, err}
		})
	}
	if m.ledger.drill && !m.ledger.loading && ledgerDue {
		cmds = append(cmds, m.loadEntries())
	}
	if ledgerDue && m.margin.shown {
		cmds = append(cmds, m.loadMargin())
	}
	return tea.Batch(cmds...)
}

// loadMargin prices the window ending now; it runs only while the Margin
// pane is shown, as it reads every entry of the window.
func (m *Model) loadMargin() tea.Cmd {
	if m.src.Margin == nil || m.margin.reading {
		return nil
	}
	m.margin.reading = true
	now := m.opts.Now()
	return func() tea.Msg {
		r, err := m.src.ReadMargin(m.ctx, now)
		return marginMsg{r, err}
	}
}

func (m *Model) loadEntries() tea.Cmd {
	if m.src.Ledger == nil {
		return nil
	}
	m.ledger.loading = true
	id, limit := m.ledger.tenant.ID, m.opts.EntriesLimit
	return func() tea.Msg {
		es, err := m.src.ReadEntries(m.ctx, id, limit)
		return entriesMsg{id, es, err}
	}
}

// Update folds messages in; it does no IO.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.Width = msg.Width
		return m, nil
	case tickMsg:
		m.ticks++
		return m, tea.Batch(m.refresh(m.ticks%m.opts.LedgerEvery == 0), m.tick())
	case scrapeMsg:
		m.scraping = false
		m.mon.ApplyScrapes(msg)
		return m, nil
	case gpuMsg:
		m.readingGPU = false
		m.mon.ApplyGPUs(msg.gpus, msg.err)
		return m, nil
	case tenantsMsg:
		m.reading = false
		m.mon.ApplyTenants(msg.rows, msg.err)
		return m, nil
	case marginMsg:
		m.margin.reading, m.margin.err = false, ""
		if msg.err != nil {
			m.margin.err = msg.err.Error() // the last good report stays
			return m, nil
		}
		m.margin.report, m.margin.loaded = msg.report, true
		return m, nil
	case entriesMsg:
		m.ledger.loading = false
		if msg.tenantID != m.ledger.tenant.ID {
			return m, nil // the user went elsewhere meanwhile
		}
		m.ledger.entries, m.ledger.entriesErr = msg.entries, ""
		if msg.err != nil {
			m.ledger.entriesErr = msg.err.Error()
		}
		return m, nil
	case tea.KeyMsg:
		return m, m.key(msg)
	}
	return m, nil
}

func (m *Model) key(msg tea.KeyMsg) tea.Cmd {
	if m.filtering {
		switch msg.Type {
		case tea.KeyEnter:
			m.filtering = false
			m.setFilter(m.input.Value())
			return nil
		case tea.KeyEsc:
			m.filtering = false
			m.input.SetValue("")
			m.setFilter("")
			return nil
		case tea.KeyCtrlC:
			return tea.Quit
		}
		var cmd tea.Cmd
		m.input, cmd = m.input.Update(msg)
		m.setFilter(m.input.Value()) // filter as you type
		return cmd
	}
	k := m.keys
	switch {
	case key.Matches(msg, k.Quit):
		return tea.Quit
	case key.Matches(msg, k.Help):
		m.showHelp = !m.showHelp
	case key.Matches(msg, k.Tab):
		if msg.Type == tea.KeyShiftTab {
			m.focus = (m.focus + paneCount - 1) % paneCount
		} else {
			m.focus = (m.focus + 1) % paneCount
		}
	case key.Matches(msg, k.Margin):
		// The bottom slot swaps between Ledger and Margin, and takes focus.
		m.margin.shown = !(m.margin.shown && m.focus == paneLedger)
		m.focus = paneLedger
		if m.margin.shown {
			return m.loadMargin()
		}
	case key.Matches(msg, k.Filter):
		if m.focus == paneGPU {
			return nil
		}
		m.filtering = true
		m.input.SetValue(m.currentFilter())
		m.input.CursorEnd()
		return m.input.Focus()
	case key.Matches(msg, k.Sort):
		switch m.focus {
		case paneTraffic:
			m.traffic.cycleSort()
		case paneLedger:
			if !m.margin.shown {
				m.ledger.cycleSort()
			}
		}
	case key.Matches(msg, k.SortRev):
		switch m.focus {
		case paneTraffic:
			m.traffic.asc = !m.traffic.asc
		case paneLedger:
			if !m.margin.shown {
				m.ledger.asc = !m.ledger.asc
			}
		}
	case key.Matches(msg, k.Up):
		if m.ledgerFocused() && !m.ledger.drill {
			m.ledger.cursor = max(m.ledger.cursor-1, 0)
		}
	case key.Matches(msg, k.Down):
		if m.ledgerFocused() && !m.ledger.drill {
			m.ledger.cursor++ // clamped when drawn
		}
	case key.Matches(msg, k.Enter):
		if m.ledgerFocused() && !m.ledger.drill {
			if t, ok := m.ledger.selected(m.mon.Tenants); ok {
				m.ledger.drill, m.ledger.tenant, m.ledger.entries, m.ledger.entriesErr = true, t, nil, ""
				return m.loadEntries()
			}
		}
	case key.Matches(msg, k.Back):
		switch {
		case m.showHelp:
			m.showHelp = false
		case m.ledgerFocused() && m.ledger.drill:
			m.ledger.drill, m.ledger.entries = false, nil
		default:
			m.setFilter("")
		}
	}
	return nil
}

// ledgerFocused: the bottom slot has focus and shows the Ledger.
func (m *Model) ledgerFocused() bool { return m.focus == paneLedger && !m.margin.shown }

func (m *Model) currentFilter() string {
	if m.focus == paneLedger && m.margin.shown {
		return m.margin.filter
	}
	if m.focus == paneLedger {
		return m.ledger.filter
	}
	return m.traffic.filter
}

func (m *Model) setFilter(f string) {
	switch m.focus {
	case paneTraffic:
		m.traffic.filter = f
	case paneLedger:
		if m.margin.shown {
			m.margin.filter = f
			return
		}
		m.ledger.filter, m.ledger.cursor, m.ledger.offset = f, 0, 0
	}
}

// View draws the screen at the current size.
func (m *Model) View() string {
	w, h := m.width, m.height
	st := m.st
	up := 0
	ts := m.mon.Targets()
	for _, t := range ts {
		if t.Up {
			up++
		}
	}
	tgt := st.ok
	if up < len(ts) {
		tgt = st.bad
	}
	head := st.title.Render("llmctl top") + st.dim.Render(" · ") +
		tgt.Render(fmt.Sprintf("%d/%d targets up", up, len(ts))) +
		st.dim.Render(fmt.Sprintf(" · every %s · %s", fmtInterval(m.opts.Interval), m.opts.Now().Format("15:04:05")))
	lines := []string{head}

	if m.showHelp {
		lines = append(lines, "", st.title.Render("Keys"))
		lines = append(lines, strings.Split(m.help.FullHelpView(m.keys.FullHelp()), "\n")...)
		lines = append(lines, "", st.dim.Render("Traffic: rates and p50/p99 are over the last refresh window, from histogram deltas."),
			st.dim.Render("Ledger: spend and requests over the last hour/day; reads every few refreshes."),
			st.dim.Render("Margin (m): revenue, attributed cost and margin per tenant and model over the last 24h, as `llmctl ledger margin`."))
		return fit(lines, w, h)
	}

	footer := m.footer()
	gpu := gpuView(m.mon, st, w)
	body := h - 1 - 1 - 3 // header, footer, three pane titles
	// Traffic gets what it needs up to two thirds; the ledger the rest.
	trafficMax := max(body-len(gpu)-4, 3)
	traffic := m.traffic.view(m.mon, st, w, min(trafficMax, max(body*2/3, 6)))
	ledgerH := max(body-len(traffic)-len(gpu), 2)
	var ledger []string
	if m.margin.shown {
		ledger = m.margin.view(m.src.Margin != nil, st, ledgerH)
	} else {
		ledger = m.ledger.view(m.mon, st, m.focus == paneLedger, w, ledgerH)
	}

	lines = append(lines, m.title(paneTraffic, m.traffic.sortName(), m.traffic.filter))
	lines = append(lines, traffic...)
	gt := m.title(paneGPU, "", "")
	if m.mon.GPUFrom != "" {
		gt += st.dim.Render("  from " + map[string]string{"nvml": "NVML", "gateway": "gateway gauges"}[m.mon.GPUFrom])
	}
	lines = append(lines, gt)
	lines = append(lines, gpu...)
	if m.margin.shown {
		lines = append(lines, m.title(paneLedger, "", m.margin.filter))
	} else {
		lines = append(lines, m.title(paneLedger, m.ledger.sortName(), m.ledger.filter))
	}
	lines = append(lines, ledger...)
	for len(lines) < h-1 {
		lines = append(lines, "")
	}
	if len(lines) > h-1 {
		lines = lines[:max(h-1, 0)]
	}
	lines = append(lines, footer)
	return fit(lines, w, h)
}

func (m *Model) title(p pane, sort, filter string) string {
	st := m.st
	s := st.title
	if m.focus == p {
		s = st.titleFocus
	}
	// Brackets mark focus even when styles are dropped (NO_COLOR).
	pn := paneNames[p]
	if p == paneLedger && m.margin.shown {
		pn = "Margin"
	}
	name := " " + pn + " "
	if m.focus == p {
		name = "[" + pn + "]"
	}
	t := s.Render(name)
	if sort != "" {
		t += st.dim.Render("  sort: " + sort)
	}
	if filter != "" {
		t += st.dim.Render("  filter: " + filter)
	}
	return t
}

func (m *Model) footer() string {
	if m.filtering {
		return m.input.View() + m.st.dim.Render("  enter apply · esc clear")
	}
	return " " + m.help.ShortHelpView(m.keys.ShortHelp())
}

// fmtInterval drops a duration's zero tails: 1s, 500ms, 1h.
func fmtInterval(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
