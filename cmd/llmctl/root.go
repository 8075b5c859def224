package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// streams are the command's standard files, swapped in tests.
type streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

func defaultStreams() streams { return streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr} }

// globals holds the persistent flags shared by every command.
type globals struct {
	streams
	ConfigFile string
	LogLevel   string
	NoColor    bool
}

// Logger builds the process logger at the configured level, writing to stderr.
func (g *globals) Logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.LogLevel)
	}
	return slog.New(slog.NewTextHandler(g.ErrOut, &slog.HandlerOptions{Level: lvl})), nil
}

// Color reports whether output may use colour: not with --no-color, nor
// with NO_COLOR set to a non-empty value (no-color.org: an empty one does
// not count).
func (g *globals) Color() bool {
	return !g.NoColor && os.Getenv("NO_COLOR") == ""
}

func newRootCmd(ctx context.Context, s streams) *cobra.Command {
	g := &globals{streams: s}
	root := &cobra.Command{
		Use:           "llmctl",
		Short:         "Check, deploy, serve and watch LLMs on an edge K3s box",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := g.Logger(); err != nil {
				return err
			}
			return nil
		},
	}
	root.SetContext(ctx)
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	pf := root.PersistentFlags()
	pf.StringVar(&g.ConfigFile, "config", "", "config file (YAML)")
	pf.StringVar(&g.LogLevel, "log-level", envOr("LLMCTL_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	pf.BoolVar(&g.NoColor, "no-color", false, "disable colour output (also NO_COLOR)")

	root.AddCommand(
		newVersionCmd(g),
		newCompletionCmd(g),
		newTenantsCmd(g),
		newKeysCmd(g),
		newAuditCmd(g),
		newMeCmd(g),
		newServeCmd(g),
		newLedgerCmd(g),
		newVouchersCmd(g),
		newBudgetsCmd(g),
		newAlertsCmd(g),
		newTopCmd(g),
		newUpCmd(g),
		newDownCmd(g),
		newDoctorCmd(g),
		newPlanCmd(g),
		newBatchesCmd(g),
	)
	strictUsage(root)
	return root
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && strings.TrimSpace(v) != "" {
		return v
	}
	return def
}
