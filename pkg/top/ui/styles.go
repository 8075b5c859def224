package ui

import "github.com/charmbracelet/lipgloss"

// styles are built from one renderer so that the colour profile (and
// NO_COLOR) is the caller's choice, not a global.
type styles struct {
	title, titleFocus, header, dim, ok, warn, bad, sel, key lipgloss.Style
	plain                                                   lipgloss.Style
}

func newStyles(r *lipgloss.Renderer) *styles {
	return &styles{
		title:      r.NewStyle().Bold(true),
		titleFocus: r.NewStyle().Bold(true).Reverse(true),
		header:     r.NewStyle().Bold(true).Foreground(lipgloss.Color("244")),
		dim:        r.NewStyle().Foreground(lipgloss.Color("244")),
		ok:         r.NewStyle().Foreground(lipgloss.Color("2")),
		warn:       r.NewStyle().Foreground(lipgloss.Color("3")),
		bad:        r.NewStyle().Foreground(lipgloss.Color("1")).Bold(true),
		sel:        r.NewStyle().Reverse(true),
		key:        r.NewStyle().Bold(true),
		plain:      r.NewStyle(),
	}
}

// level picks ok/warn/bad by thresholds (v >= bad is bad, >= warn is warn).
func (s *styles) level(v, warn, bad float64) lipgloss.Style {
	switch {
	case v >= bad:
		return s.bad
	case v >= warn:
		return s.warn
	default:
		return s.plain
	}
}
