package preflight

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Schema names the JSON layout of a Report; bump it on any incompatible change.
const Schema = "llmctl.doctor/v1"

// Report is the outcome of a run: every result and a summary.
type Report struct {
	Schema  string   `json:"schema"`
	Summary Summary  `json:"summary"`
	Results []Result `json:"results"`
}

// Summary counts results by verdict.
type Summary struct {
	Total int `json:"total"`
	Pass  int `json:"pass"`
	Warn  int `json:"warn"`
	Fail  int `json:"fail"`
	Skip  int `json:"skip"`
}

// NewReport builds a report over results, counting verdicts.
func NewReport(results []Result) Report {
	r := Report{Schema: Schema, Results: results}
	for _, res := range results {
		r.Summary.Total++
		switch res.Verdict {
		case Pass:
			r.Summary.Pass++
		case Warn:
			r.Summary.Warn++
		case Fail:
			r.Summary.Fail++
		case Skip:
			r.Summary.Skip++
		}
	}
	return r
}

// ExitCode is 1 when anything failed (or, with strict, warned), else 0.
func (r Report) ExitCode(strict bool) int {
	if r.Summary.Fail > 0 || (strict && r.Summary.Warn > 0) {
		return 1
	}
	return 0
}

// Line is the one-line summary printed under the table.
func (s Summary) Line() string {
	return fmt.Sprintf("%d checks: %d passed, %d warnings, %d failed, %d skipped",
		s.Total, s.Pass, s.Warn, s.Fail, s.Skip)
}

// Fixes lists the automatic fixes offered by failing or warning results.
func (r Report) Fixes() []*Fix {
	var out []*Fix
	for _, res := range r.Results {
		if f := res.Fix(); f != nil {
			out = append(out, f)
		}
	}
	return out
}

// TableOptions shape the human report.
type TableOptions struct {
	Color bool
	// Verbose prints the evidence of passing and skipped checks too.
	Verbose bool
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
)

// WriteTable prints results grouped by category: a verdict, the check id and
// its finding per line, then (for warnings and failures) the evidence and the
// fix, and a summary line.
func (r Report) WriteTable(w io.Writer, opt TableOptions) error {
	paint := func(code, s string) string {
		if !opt.Color {
			return s
		}
		return code + s + ansiReset
	}
	idw := 0
	for _, res := range r.Results {
		idw = max(idw, len(res.ID))
	}
	var b strings.Builder
	indent := strings.Repeat(" ", 2+4+2+idw+2)
	for _, cat := range Categories() {
		i := slices.IndexFunc(r.Results, func(res Result) bool { return res.Category == cat })
		if i < 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(paint(ansiBold, strings.ToUpper(string(cat))) + "\n")
		for _, res := range r.Results {
			if res.Category != cat {
				continue
			}
			var tag string
			switch res.Verdict {
			case Pass:
				tag = paint(ansiGreen, "PASS")
			case Warn:
				tag = paint(ansiYellow, "WARN")
			case Fail:
				tag = paint(ansiRed, "FAIL")
			default:
				tag = paint(ansiDim, "SKIP")
			}
			fmt.Fprintf(&b, "  %s  %-*s  %s\n", tag, idw, res.ID, res.Message)
			bad := res.Verdict == Warn || res.Verdict == Fail
			if bad || opt.Verbose {
				for _, ev := range res.Evidence {
					b.WriteString(indent + paint(ansiDim, "· "+ev) + "\n")
				}
			}
			if bad && res.Remedy != "" {
				lines := strings.Split(res.Remedy, "\n")
				b.WriteString(indent + paint(ansiBold, "fix: ") + lines[0] + "\n")
				for _, l := range lines[1:] {
					b.WriteString(indent + "     " + l + "\n")
				}
			}
			if res.FixID != "" {
				b.WriteString(indent + "(llmctl doctor --fix can apply this: " + res.FixID + ")\n")
			}
		}
	}
	b.WriteString("\n" + r.Summary.Line() + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}
