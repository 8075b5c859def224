package ui

import (
	"fmt"
	"strings"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/margin"
)

// marginPane shows revenue, attributed cost and margin per tenant and model
// over top.MarginWindow; `m` swaps it with the ledger pane in the bottom slot.
type marginPane struct {
	shown   bool
	filter  string
	report  margin.Report
	err     string
	loaded  bool
	reading bool
}

type marginMsg struct {
	report margin.Report
	err    error
}

// micros prints to the micro-unit, as `llmctl ledger margin` does.
func micros(m ledger.Micros) string { return m.String() }

func (p *marginPane) view(hasLedger bool, st *styles, height int) []string {
	if !hasLedger {
		return []string{st.dim.Render("  no ledger: pass --db (or set LLMCTL_DB) to the database `llmctl ledger` uses")}
	}
	var out []string
	if p.err != "" {
		out = append(out, st.bad.Render("  ✗ ")+st.plain.Render(p.err))
	}
	if !p.loaded {
		return append(out, st.dim.Render("  loading…"))
	}
	r := p.report
	f := strings.ToLower(p.filter)
	var rows [][]cell
	for _, row := range r.Rows {
		if f != "" && !strings.Contains(strings.ToLower(row.Tenant), f) && !strings.Contains(strings.ToLower(row.Model), f) {
			continue
		}
		mg := st.plain
		if row.Margin < 0 {
			mg = st.bad
		}
		model := row.Model
		if model == "" {
			model = "-"
		}
		rows = append(rows, []cell{
			{row.Tenant, st.plain}, {model, st.plain}, {fmt.Sprint(row.Requests), st.plain},
			{fmt.Sprintf("%d+%d", row.Prompt, row.Generated), st.plain}, {fmt.Sprintf("%.1f%%", 100*row.Share), st.plain},
			{micros(row.Revenue), st.plain}, {micros(row.Cost), st.plain}, {micros(row.Margin), mg},
		})
	}
	// The footer: total, window and what the cost is made of.
	tail := []string{}
	if r.TokensPerJoule > 0 {
		tail = append(tail, st.dim.Render(fmt.Sprintf("  tokens per joule %.3f", r.TokensPerJoule)))
	}
	// The basis, one part a line: it would not fit one line of a terminal.
	for i, part := range strings.Split(r.Basis, "; ") {
		if i == 0 {
			part = fmt.Sprintf("last %s (%s .. %s) · cost: %s", fmtInterval(r.Until.Sub(r.Since)),
				r.Since.UTC().Format("01-02 15:04"), r.Until.UTC().Format("01-02 15:04"), part)
		} else {
			part = "  " + part
		}
		tail = append(tail, st.dim.Render("  "+part))
	}
	if r.Unattributed > 0 {
		tail = append(tail, st.dim.Render("  unattributed (no tokens in the window): "+micros(r.Unattributed)))
	}
	if len(r.Rows) == 0 {
		return append(append(out, st.dim.Render("  no charges in the window")), tail...)
	}
	tot := st.title
	if r.Margin < 0 {
		tot = st.bad
	}
	total := []cell{{"TOTAL", st.title}, {"", st.plain}, {"", st.plain}, {"", st.plain}, {"", st.plain},
		{micros(r.Revenue), st.title}, {micros(r.TotalCost), st.title}, {micros(r.Margin), tot}}
	room := max(height-len(out)-len(tail)-2, 1) // header and total
	if len(rows) > room {
		rows = rows[:room]
	}
	cols := []column{
		{title: "TENANT", width: 14}, {title: "MODEL", width: 16}, {title: "REQS", width: 6, right: true},
		{title: "TOKENS IN+OUT", width: 15, right: true}, {title: "SHARE", width: 6, right: true},
		{title: "REVENUE", width: 13, right: true}, {title: "COST", width: 13, right: true}, {title: "MARGIN", width: 13, right: true},
	}
	for _, l := range table(st, cols, append(rows, total)) {
		out = append(out, "  "+l)
	}
	return append(out, tail...)
}
