package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/internal/version"
)

func newVersionCmd(g *globals) *cobra.Command {
	var format printer.Format
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := version.Get()
			if format != printer.Table {
				return printer.Structured(g.Out, format, info)
			}
			_, err := fmt.Fprintf(g.Out, "llmctl %s (commit %s, built %s, %s, %s)\n",
				info.Version, info.Commit, info.Date, info.GoVersion, info.Platform)
			return err
		},
	}
	printer.Bind(cmd, &format)
	return cmd
}

func newCompletionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:       "completion bash|zsh|fish|powershell",
		Short:     "Print a shell completion script",
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(g.Out, true)
			case "zsh":
				return root.GenZshCompletion(g.Out)
			case "fish":
				return root.GenFishCompletion(g.Out, true)
			default:
				return root.GenPowerShellCompletionWithDesc(g.Out)
			}
		},
	}
}
