package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// usageError is a command line that cannot mean anything: an unknown
// subcommand or flag, or the wrong arguments. It exits 2, as flag parsing
// errors conventionally do, and points at the command's help.
type usageError struct {
	msg  string
	path string // the command whose help explains the right form
}

func (e usageError) Error() string {
	return fmt.Sprintf("%s\nSee '%s --help'.", e.msg, e.path)
}

func (e usageError) ExitCode() int { return 2 }

// strictUsage makes every usage mistake under root a usageError: cobra's
// own behaviour is to print a group's help and exit 0 for `llmctl ledger
// balanse`, which a script cannot tell from success.
func strictUsage(root *cobra.Command) {
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{msg: err.Error(), path: c.CommandPath()}
	})
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		switch {
		case c.HasSubCommands() && c.Run == nil && c.RunE == nil:
			c.Args = cobra.ArbitraryArgs
			c.RunE = runGroup
		case c.Args != nil:
			args := c.Args
			c.Args = func(c *cobra.Command, a []string) error {
				if err := args(c, a); err != nil {
					return usageError{msg: err.Error(), path: c.CommandPath()}
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// runGroup is the Run of a command that only groups others: its help when
// called alone, an error with suggestions for an unknown subcommand.
func runGroup(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return c.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's default, set only on its own path
	}
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError{msg: msg, path: c.CommandPath()}
}

// isUsage reports whether err is a usage mistake (for tests).
func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}
