package printer

import (
	"strings"

	"github.com/spf13/cobra"
)

// Flag is the name of the output flag every command shares (short: -o).
const Flag = "output"

// formatValue is the -o flag's value: it parses as it is set, so a format
// the command does not offer is a flag error (a usage error, exit 2) that
// names the valid ones, before the command runs.
type formatValue struct {
	dst     *Format
	allowed []Format
}

func (v *formatValue) String() string { return string(*v.dst) }
func (v *formatValue) Type() string   { return "format" }

func (v *formatValue) Set(s string) error {
	f, err := Parse(s, v.allowed...)
	if err != nil {
		return err
	}
	*v.dst = f
	return nil
}

// Bind adds -o/--output to cmd. dst starts at the first allowed format
// (table, json, yaml when none are given) and holds the parsed format once
// flags are parsed; shells complete the allowed values. This is the one
// place a command's -o is declared, so every command spells, defaults,
// validates and completes it alike.
func Bind(cmd *cobra.Command, dst *Format, allowed ...Format) {
	if len(allowed) == 0 {
		allowed = defaultFormats()
	}
	*dst = allowed[0]
	names := make([]string, len(allowed))
	for i, f := range allowed {
		names[i] = string(f)
	}
	cmd.Flags().VarP(&formatValue{dst: dst, allowed: allowed}, Flag, "o", "output format: "+strings.Join(names, ", "))
	// The error is only for a flag that does not exist, which cannot happen
	// right after VarP.
	_ = cmd.RegisterFlagCompletionFunc(Flag, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return names, cobra.ShellCompDirectiveNoFileComp
	})
}
