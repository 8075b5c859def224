package ui

import (
	"fmt"
	"sort"
	"strings"

	"github.com/llmctl/llmctl/pkg/top"
)

// ledgerPane lists tenants with balance and spend; enter shows one tenant's
// newest entries.
type ledgerPane struct {
	filter  string
	sortCol int
	asc     bool
	cursor  int
	offset  int

	drill      bool
	tenant     top.TenantRow
	entries    []top.Entry
	entriesErr string
	loading    bool
}

var ledgerSorts = []string{"spend 24h", "tenant", "balance", "spend 1h", "reqs 24h"}

func (p *ledgerPane) sortName() string { return ledgerSorts[p.sortCol] }
func (p *ledgerPane) cycleSort()       { p.sortCol = (p.sortCol + 1) % len(ledgerSorts); p.cursor = 0 }

// rows is the filtered, sorted tenant list.
func (p *ledgerPane) rows(all []top.TenantRow) []top.TenantRow {
	var rs []top.TenantRow
	f := strings.ToLower(p.filter)
	for _, r := range all {
		if f == "" || strings.Contains(strings.ToLower(r.Name), f) || strings.Contains(strings.ToLower(r.ID), f) {
			rs = append(rs, r)
		}
	}
	key := func(r top.TenantRow) int64 {
		switch p.sortCol {
		case 0:
			return r.Spend24h
		case 2:
			return r.Balance
		case 3:
			return r.Spend1h
		case 4:
			return r.Requests24h
		}
		return 0
	}
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if p.sortCol != 1 && key(a) != key(b) {
			return (key(a) > key(b)) != p.asc
		}
		return (a.Name < b.Name) != (p.sortCol == 1 && p.asc)
	})
	return rs
}

// selected is the tenant under the cursor, if any.
func (p *ledgerPane) selected(all []top.TenantRow) (top.TenantRow, bool) {
	rs := p.rows(all)
	if len(rs) == 0 {
		return top.TenantRow{}, false
	}
	p.cursor = min(max(p.cursor, 0), len(rs)-1)
	return rs[p.cursor], true
}

func (p *ledgerPane) view(mon *top.Monitor, st *styles, focused bool, width, height int) []string {
	if !mon.HasLedger {
		return []string{st.dim.Render("  no ledger: pass --db (or set LLMCTL_DB) to the database `llmctl ledger` uses")}
	}
	var out []string
	if mon.LedgerErr != "" {
		out = append(out, st.bad.Render("  ✗ ")+st.plain.Render(mon.LedgerErr))
	}
	if p.drill {
		return append(out, p.entriesView(st, width, height-len(out))...)
	}
	rs := p.rows(mon.Tenants)
	if len(rs) == 0 {
		msg := "  no tenants yet"
		if p.filter != "" {
			msg = fmt.Sprintf("  no tenant matches %q", p.filter)
		}
		return append(out, st.dim.Render(msg))
	}
	p.cursor = min(max(p.cursor, 0), len(rs)-1)
	nameW := 8
	for _, r := range rs {
		nameW = max(nameW, len(r.Name))
	}
	cols := []column{
		{title: "TENANT", width: min(nameW, 24)},
		{title: "BALANCE", width: 13, right: true},
		{title: "SPEND 1H", width: 11, right: true},
		{title: "SPEND 24H", width: 11, right: true},
		{title: "REQS 1H", width: 8, right: true},
		{title: "REQS 24H", width: 9, right: true},
	}
	idx := map[int]int{0: 3, 1: 0, 2: 1, 3: 2, 4: 5}[p.sortCol]
	if p.asc {
		cols[idx].title += "▲"
	} else {
		cols[idx].title += "▼"
	}
	room := max(height-len(out)-1, 1)
	if p.filter != "" {
		room = max(room-1, 1)
	}
	// Scroll so that the cursor stays on screen.
	if p.cursor < p.offset {
		p.offset = p.cursor
	}
	if p.cursor >= p.offset+room {
		p.offset = p.cursor - room + 1
	}
	p.offset = min(p.offset, max(len(rs)-room, 0))
	var rows [][]cell
	for i := p.offset; i < len(rs) && i < p.offset+room; i++ {
		r := rs[i]
		bal := st.plain
		if r.Balance < 0 {
			bal = st.bad
		}
		name := st.plain
		if focused && i == p.cursor {
			name = st.sel
		}
		rows = append(rows, []cell{
			{r.Name, name}, {fmtMoney(r.Balance), bal}, {fmtMoney(r.Spend1h), st.plain}, {fmtMoney(r.Spend24h), st.plain},
			{fmt.Sprint(r.Requests1h), st.plain}, {fmt.Sprint(r.Requests24h), st.plain},
		})
	}
	for i, l := range table(st, cols, rows) {
		// A text marker as well as reverse video: without colour (NO_COLOR)
		// styles are dropped and the cursor must still show.
		if focused && i-1 == p.cursor-p.offset {
			out = append(out, " ›"+l)
			continue
		}
		out = append(out, "  "+l)
	}
	if p.filter != "" {
		out = append(out, st.dim.Render(fmt.Sprintf("  filter %q: %d of %d tenants", p.filter, len(rs), len(mon.Tenants))))
	}
	return out
}

func (p *ledgerPane) entriesView(st *styles, width, height int) []string {
	out := []string{st.title.Render("  "+p.tenant.Name) + st.dim.Render(fmt.Sprintf("  balance %s · newest entries · esc back", fmtMoney(p.tenant.Balance)))}
	switch {
	case p.entriesErr != "":
		return append(out, st.bad.Render("  ✗ ")+st.plain.Render(p.entriesErr))
	case p.loading && p.entries == nil:
		return append(out, st.dim.Render("  loading…"))
	case len(p.entries) == 0:
		return append(out, st.dim.Render("  no entries"))
	}
	cols := []column{
		{title: "TIME", width: 19},
		{title: "KIND", width: 10},
		{title: "AMOUNT", width: 12, right: true},
		{title: "MODEL", width: 16},
		{title: "TOKENS IN/OUT", width: 13, right: true},
		{title: "REASON", width: max(width-2-19-10-12-16-13-5-2, 6)},
	}
	var rows [][]cell
	for i, e := range p.entries {
		if i >= height-2 {
			break
		}
		amt := st.plain
		if e.Amount > 0 {
			amt = st.ok
		}
		toks := ""
		if e.PromptTokens != 0 || e.CompletionTokens != 0 {
			toks = fmt.Sprintf("%d/%d", e.PromptTokens, e.CompletionTokens)
		}
		rows = append(rows, []cell{
			{e.Time.UTC().Format("2006-01-02 15:04:05"), st.dim}, {e.Kind, st.plain}, {fmtEntry(e.Amount), amt},
			{e.Model, st.plain}, {toks, st.plain}, {e.Reason, st.dim},
		})
	}
	for _, l := range table(st, cols, rows) {
		out = append(out, "  "+l)
	}
	return out
}
