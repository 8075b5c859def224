package ui

import (
	"fmt"

	"github.com/llmctl/llmctl/pkg/top"
)

// gpuView draws one line per GPU, or the note saying why there are none.
func gpuView(mon *top.Monitor, st *styles, width int) []string {
	if len(mon.GPUs) == 0 {
		return []string{st.dim.Render("  " + mon.GPUNote())}
	}
	nameW := 6
	for _, g := range mon.GPUs {
		nameW = max(nameW, len(g.Name))
	}
	cols := []column{
		{title: "GPU", width: min(nameW, 24)},
		{title: "UTIL", width: 5, right: true},
		{title: "", width: 12},
		{title: "VRAM GiB", width: 11, right: true},
		{title: "", width: 12},
		{title: "TEMP", width: 5, right: true},
		{title: "POWER", width: 6, right: true},
	}
	var rows [][]cell
	for _, g := range mon.GPUs {
		mem := 0.0
		if g.MemTotal > 0 {
			mem = g.MemUsed / g.MemTotal
		}
		rows = append(rows, []cell{
			{g.Name, st.plain},
			{fmt.Sprintf("%.0f%%", g.Utilization*100), st.level(g.Utilization, 0.9, 0.99)},
			{bar(g.Utilization, 12), st.level(g.Utilization, 0.9, 0.99)},
			{fmtGiB(g.MemUsed) + "/" + fmtGiB(g.MemTotal), st.level(mem, 0.9, 0.97)},
			{bar(mem, 12), st.level(mem, 0.9, 0.97)},
			{fmt.Sprintf("%.0f°C", g.TempC), st.level(g.TempC, 80, 90)},
			{fmt.Sprintf("%.0fW", g.PowerW), st.plain},
		})
	}
	var out []string
	for _, l := range table(st, cols, rows) {
		out = append(out, "  "+l)
	}
	return out
}
