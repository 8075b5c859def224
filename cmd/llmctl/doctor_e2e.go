package main

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/preflight"
	"github.com/llmctl/llmctl/pkg/preflight/canary"
)

// doctorE2EOptions is `llmctl doctor --e2e`: the paid canary
// (pkg/preflight/canary) instead of the host checks.
type doctorE2EOptions struct {
	E2E        bool
	rf         remoteFlags
	Model      string
	Fund       string
	MetricsURL string
	MaxTTFT    time.Duration
	Wait       time.Duration
}

// withE2E adds --e2e and its flags to doctor; with --e2e the canary runs
// and its report is printed in doctor's format (and its -o), otherwise doctor runs as
// before.
func withE2E(cmd *cobra.Command, g *globals, format *printer.Format) {
	o := &doctorE2EOptions{}
	f := cmd.Flags()
	f.BoolVar(&o.E2E, "e2e", false, "send one paid canary request through the running gateway (needs --server and an admin --api-key)")
	f.StringVar(&o.rf.Server, "server", "", "with --e2e: the gateway's URL (env LLMCTL_SERVER)")
	f.StringVar(&o.rf.APIKey, "api-key", "", "with --e2e: an admin key (env LLMCTL_API_KEY)")
	f.StringVar(&o.Model, "e2e-model", "", "with --e2e: the model to ask (default: the first listed)")
	f.StringVar(&o.Fund, "e2e-fund", "0.10", "with --e2e: what the canary tenant is credited")
	f.StringVar(&o.MetricsURL, "metrics-url", "", "with --e2e: the gateway's admin /metrics, to check it counted the request")
	f.DurationVar(&o.MaxTTFT, "max-ttft", 10*time.Second, "with --e2e: warn when the first token takes longer")
	f.DurationVar(&o.Wait, "e2e-wait", 30*time.Second, "with --e2e: how long the charge may take to reach the ledger")
	hostChecks := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !o.E2E {
			return hostChecks(cmd, args)
		}
		rc, err := o.rf.remote(nil)
		if err != nil {
			return err
		}
		if rc == nil {
			return errors.New("--e2e needs --server (or LLMCTL_SERVER) and an admin --api-key")
		}
		rep := preflight.NewReport(canary.Run(cmd.Context(), canary.Options{Admin: rc, Server: rc.Server(), Model: o.Model, Fund: o.Fund,
			MetricsURL: o.MetricsURL, MaxTTFT: o.MaxTTFT, Wait: o.Wait}))
		if *format != printer.Table {
			err = printer.Structured(g.Out, *format, rep)
		} else {
			err = rep.WriteTable(g.Out, preflight.TableOptions{Color: g.Color() && isTerminal(g.Out)})
		}
		if err != nil {
			return err
		}
		if code := rep.ExitCode(false); code != 0 {
			return exitError{code: code}
		}
		return nil
	}
}
