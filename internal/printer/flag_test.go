package printer

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestBind(t *testing.T) {
	var f Format
	cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
	Bind(cmd, &f, Table, JSON, CSV)
	if f != Table {
		t.Fatalf("default %q, want table", f)
	}
	fl := cmd.Flags().Lookup(Flag)
	if fl.Shorthand != "o" || fl.Usage != "output format: table, json, csv" {
		t.Fatalf("flag %+v", fl)
	}
	if err := cmd.ParseFlags([]string{"-o", "CSV"}); err != nil || f != CSV {
		t.Fatalf("-o CSV: %q %v", f, err)
	}
	err := cmd.ParseFlags([]string{"--output", "yaml"})
	if err == nil || !strings.Contains(err.Error(), `"yaml"`) || !strings.Contains(err.Error(), "table, json, csv") {
		t.Fatalf("-o yaml: want an error naming it and the valid formats, got %v", err)
	}
	comp, ok := cmd.GetFlagCompletionFunc(Flag)
	if !ok {
		t.Fatal("no completion for -o")
	}
	if got, dir := comp(cmd, nil, ""); strings.Join(got, ",") != "table,json,csv" || dir != cobra.ShellCompDirectiveNoFileComp {
		t.Fatalf("completion %v %v", got, dir)
	}

	var d Format
	Bind(&cobra.Command{Use: "y"}, &d)
	if d != Table {
		t.Fatalf("default formats start at %q", d)
	}
}
