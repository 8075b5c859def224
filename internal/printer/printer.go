// Package printer writes command results as a table, JSON or YAML, the
// shared `-o` flag of every llmctl command.
package printer

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"
)

// Format is an output format accepted by `-o`.
type Format string

// Formats every command understands. Commands may accept a subset.
const (
	Table Format = "table"
	JSON  Format = "json"
	YAML  Format = "yaml"
	CSV   Format = "csv"
)

// defaultFormats are what a command offers unless it says otherwise (csv
// only where rows are flat).
func defaultFormats() []Format { return []Format{Table, JSON, YAML} }

// Parse validates s against the allowed formats; "" means the first allowed.
func Parse(s string, allowed ...Format) (Format, error) {
	if len(allowed) == 0 {
		allowed = defaultFormats()
	}
	if s == "" {
		return allowed[0], nil
	}
	names := make([]string, 0, len(allowed))
	for _, f := range allowed {
		if strings.EqualFold(s, string(f)) {
			return f, nil
		}
		names = append(names, string(f))
	}
	return "", fmt.Errorf("unknown output format %q (want one of: %s)", s, strings.Join(names, ", "))
}

// Structured writes v as indented JSON or as YAML.
func Structured(w io.Writer, f Format, v any) error {
	switch f {
	case JSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case YAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	default:
		return fmt.Errorf("format %q is not structured", f)
	}
}

// Items writes one item as an object and several (or none) as a list: the
// shape of commands that show what they just changed (create, limits). A
// list command prints a list whatever its length (Structured on a slice).
func Items[T any](w io.Writer, f Format, items []T) error {
	if len(items) == 1 {
		return Structured(w, f, items[0])
	}
	return Structured(w, f, items)
}

// TableWriter writes aligned columns; the header row is upper-cased.
func TableWriter(w io.Writer, header ...string) *Tab {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	t := &Tab{tw: tw}
	if len(header) > 0 {
		up := make([]string, len(header))
		for i, h := range header {
			up[i] = strings.ToUpper(h)
		}
		t.Row(up...)
	}
	return t
}

// Tab is an aligned table being written.
type Tab struct{ tw *tabwriter.Writer }

// Row appends one row.
func (t *Tab) Row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

// Flush writes the table out.
func (t *Tab) Flush() error { return t.tw.Flush() }
