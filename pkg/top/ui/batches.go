package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/llmctl/llmctl/pkg/top/metrics"
)

// batchesLine is one line under the traffic table with the unfinished
// batches (Batches API) and their progress: done/total lines, the failed
// ones, a percentage; what does not fit the width is counted. Nothing
// when no batch is running, so the pane of a gateway without batches does
// not grow.
func batchesLine(tr metrics.Traffic, st *styles, width int) []string {
	if len(tr.Batches) == 0 {
		return nil
	}
	head := st.dim.Render(fmt.Sprintf("  batches %d ", len(tr.Batches)))
	l := head
	for i, b := range tr.Batches {
		done := b.Completed + b.Failed
		pct := 0.0
		if b.Total > 0 {
			pct = 100 * done / b.Total
		}
		item := fmt.Sprintf(" %s %s %.0f/%.0f %.0f%%", shortID(b.ID), b.Status, done, b.Total, pct)
		style := st.plain
		if b.Failed > 0 {
			item += fmt.Sprintf(" (%.0f failed)", b.Failed)
			style = st.warn
		}
		more := ""
		if rest := len(tr.Batches) - i - 1; rest > 0 {
			more = fmt.Sprintf("  … %d more", rest)
		}
		if ansi.StringWidth(l)+len(item)+len(more) > width && i > 0 {
			return []string{l + st.dim.Render(fmt.Sprintf("  … %d more", len(tr.Batches)-i))}
		}
		l += style.Render(item)
	}
	return []string{l}
}

// shortID drops the "batch_" prefix and keeps the id's last 8 characters:
// ids begin with their creation time, so their ends tell them apart.
func shortID(id string) string {
	id = strings.TrimPrefix(id, "batch_")
	if len(id) > 8 {
		return "…" + id[len(id)-8:]
	}
	return id
}
