package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/preflight/plan"
)

// planOptions is `llmctl plan`: the bounded load probe (pkg/preflight/plan).
type planOptions struct {
	plan.Options
	format printer.Format
}

func newPlanCmd(g *globals) *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Probe the gateway at rising concurrency and suggest maxConcurrency, per-tenant TPM and tokens/day",
		Long: `plan sends short streamed chat completions through the gateway at each
concurrency of --levels (--per-level requests each), all within --budget, and
stops at the first level whose TTFT p99 misses --ttft-p99 or that saw errors.
The highest level that met it is the suggested maxConcurrency; its generated
tokens per second give the per-tenant TPM (shared by --tenants) and the tokens
a day the box can sell at that target. The probe's own requests are charged
to the key's tenant like any other.`,
		Example: `  llmctl plan --server http://127.0.0.1:8080 --api-key $KEY --model qwen2.5-7b --ttft-p99 1s
  llmctl plan --server http://127.0.0.1:8080 --api-key $KEY --model demo --levels 1,2,4 --budget 30s -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Key == "" {
				o.Key = strings.TrimSpace(os.Getenv("LLMCTL_API_KEY"))
			}
			if o.Server == "" {
				o.Server = strings.TrimSpace(os.Getenv("LLMCTL_SERVER"))
			}
			switch {
			case o.Server == "" || o.Key == "" || o.Model == "":
				return errors.New("plan needs --server, --api-key (a tenant's key) and --model")
			case o.PerLevel < 1 || o.MaxTokens < 1 || o.Budget <= 0 || o.TTFTTarget <= 0 || o.Tenants < 1:
				return errors.New("--per-level, --max-tokens and --tenants must be at least 1, --budget and --ttft-p99 positive")
			}
			for _, l := range o.Levels {
				if l < 1 || l > 1024 {
					return fmt.Errorf("--levels: %d is not a concurrency between 1 and 1024", l)
				}
			}
			o.Server = strings.TrimSuffix(o.Server, "/")
			p, err := plan.Run(cmd.Context(), o.Options)
			if err != nil {
				return err
			}
			if o.format != printer.Table {
				return printer.Structured(g.Out, o.format, p)
			}
			tw := printer.TableWriter(g.Out, "concurrency", "requests", "errors", "tokens/s", "ttft p50", "ttft p99", "meets target")
			for _, l := range p.Levels {
				tw.Row(fmt.Sprint(l.Concurrency), fmt.Sprint(l.Requests), fmt.Sprint(l.Errors), fmt.Sprintf("%.1f", l.TokensPerSecond),
					l.TTFTP50.Round(time.Millisecond).String(), l.TTFTP99.Round(time.Millisecond).String(), fmt.Sprint(l.MeetsTarget))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(g.Out, "\nsuggested: maxConcurrency %d, per-tenant TPM %d (%d tenants)\n%s\n", p.MaxConcurrency, p.TenantTPM, o.Tenants, p.Summary)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Server, "server", "", "the gateway's URL (env LLMCTL_SERVER)")
	fl.StringVar(&o.Key, "api-key", "", "a tenant's API key; the probe is charged to it (env LLMCTL_API_KEY)")
	fl.StringVar(&o.Model, "model", "", "the model to probe")
	fl.IntSliceVar(&o.Levels, "levels", []int{1, 2, 4, 8}, "concurrencies to try, in order")
	fl.IntVar(&o.PerLevel, "per-level", 8, "requests per level (at least the level's concurrency)")
	fl.IntVar(&o.MaxTokens, "max-tokens", 64, "max_tokens of each probe request")
	fl.DurationVar(&o.TTFTTarget, "ttft-p99", 2*time.Second, "the TTFT p99 the suggestion must meet")
	fl.DurationVar(&o.Budget, "budget", time.Minute, "the whole probe's time limit")
	fl.IntVar(&o.Tenants, "tenants", 1, "tenants sharing the box, for the per-tenant TPM")
	printer.Bind(cmd, &o.format)
	return cmd
}
