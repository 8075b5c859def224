package printer

import (
	"bytes"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	if f, err := Parse(""); err != nil || f != Table {
		t.Fatalf("default: %v %v", f, err)
	}
	if f, err := Parse("JSON"); err != nil || f != JSON {
		t.Fatalf("case-insensitive: %v %v", f, err)
	}
	if _, err := Parse("csv"); err == nil || !strings.Contains(err.Error(), "table, json, yaml") {
		t.Fatalf("csv not allowed by default: %v", err)
	}
	if f, err := Parse("csv", Table, CSV); err != nil || f != CSV {
		t.Fatalf("csv allowed: %v %v", f, err)
	}
}

func TestItems(t *testing.T) {
	for _, c := range []struct {
		items []int
		want  string
	}{{[]int{7}, "7\n"}, {[]int{1, 2}, "[\n  1,\n  2\n]\n"}, {[]int{}, "[]\n"}} {
		var b bytes.Buffer
		if err := Items(&b, JSON, c.items); err != nil || b.String() != c.want {
			t.Errorf("Items(%v) = %q, %v; want %q", c.items, b.String(), err, c.want)
		}
	}
	if err := Items(&bytes.Buffer{}, Table, []int{1}); err == nil {
		t.Error("table is not a structured format")
	}
}
