package ui

import (
	"fmt"
	"math"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/llmctl/llmctl/pkg/top"
)

// cell is one table cell: plain text and the style it is drawn with.
type cell struct {
	text  string
	style lipgloss.Style
}

// column is a table column: header, width and alignment.
type column struct {
	title string
	width int
	right bool
}

// table draws header and rows; widths are in cells, text is clipped.
func table(st *styles, cols []column, rows [][]cell) []string {
	var lines []string
	var hb strings.Builder
	for i, c := range cols {
		if i > 0 {
			hb.WriteString(" ")
		}
		hb.WriteString(pad(c.title, c.width, c.right))
	}
	lines = append(lines, st.header.Render(hb.String()))
	for _, r := range rows {
		var b strings.Builder
		for i, c := range cols {
			if i > 0 {
				b.WriteString(" ")
			}
			if i < len(r) {
				b.WriteString(r[i].style.Render(pad(r[i].text, c.width, c.right)))
			} else {
				b.WriteString(strings.Repeat(" ", c.width))
			}
		}
		lines = append(lines, b.String())
	}
	return lines
}

func pad(s string, w int, right bool) string {
	if ansi.StringWidth(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	gap := w - ansi.StringWidth(s)
	if right {
		return strings.Repeat(" ", gap) + s
	}
	return s + strings.Repeat(" ", gap)
}

// fit clips every line to width and the whole to height lines.
func fit(lines []string, width, height int) string {
	if height > 0 && len(lines) > height {
		lines = lines[:height]
	}
	for i, l := range lines {
		if width > 0 && ansi.StringWidth(l) > width {
			lines[i] = ansi.Truncate(l, width, "")
		}
	}
	return strings.Join(lines, "\n")
}

var sparks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws vs scaled to their maximum, right-aligned in width.
func sparkline(vs []float64, width int) string {
	if len(vs) > width {
		vs = vs[len(vs)-width:]
	}
	max := 0.0
	for _, v := range vs {
		max = math.Max(max, v)
	}
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", width-len(vs)))
	for _, v := range vs {
		i := 0
		if max > 0 && v > 0 {
			i = int(math.Round(v / max * float64(len(sparks)-1)))
		}
		b.WriteRune(sparks[i])
	}
	return b.String()
}

// bar draws a 0..1 ratio as a fixed-width bar.
func bar(r float64, width int) string {
	r = math.Min(math.Max(r, 0), 1)
	n := int(math.Round(r * float64(width)))
	return strings.Repeat("█", n) + strings.Repeat("░", width-n)
}

func fmtRate(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 1000:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// fmtSecs formats a latency; samples==0 means there was nothing to measure.
func fmtSecs(v, samples float64) string {
	switch {
	case samples == 0:
		return "-"
	case v < 0.001:
		return "<1ms"
	case v < 1:
		return fmt.Sprintf("%.0fms", v*1000)
	default:
		return fmt.Sprintf("%.2fs", v)
	}
}

func fmtPct(r float64) string {
	if r == 0 {
		return "0%"
	}
	return fmt.Sprintf("%.1f%%", r*100)
}

// fmtMoney shows micro-units with four decimals.
func fmtMoney(m int64) string { return top.Money(m, 4) }

// fmtEntry shows one entry to the micro-unit: a request's debit is often
// below 0.0001, which four decimals would print as 0.0000.
func fmtEntry(m int64) string { return top.Money(m, 6) }

func fmtGiB(b float64) string { return fmt.Sprintf("%.1f", b/(1<<30)) }

// wrap splits s into lines of at most w cells, at spaces where it can.
func wrap(s string, w int) []string {
	var out []string
	for ansi.StringWidth(s) > w {
		cut := ansi.Truncate(s, w, "")
		if i := strings.LastIndex(cut, " "); i > w/2 {
			cut = cut[:i]
		}
		out = append(out, cut)
		s = strings.TrimLeft(s[len(cut):], " ")
	}
	return append(out, s)
}
