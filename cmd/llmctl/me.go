package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

// meOptions is `llmctl me`: what the server knows about the --api-key
// (GET /v1/me). Any working key may ask, so it needs no admin key.
type meOptions struct {
	rf remoteFlags

	format printer.Format
}

func (o *meOptions) Complete([]string) error { return nil }

func (o *meOptions) Validate() error { return nil }

func (o *meOptions) Run(cmd *cobra.Command, g *globals) error {
	c, err := o.rf.remote(nil)
	if err != nil {
		return err
	}
	if c == nil {
		return fmt.Errorf("llmctl me asks a server about a key: pass --server URL (or LLMCTL_SERVER) and --api-key")
	}
	me, err := c.Me(cmd.Context())
	if err != nil {
		return err
	}
	if o.format != printer.Table {
		return printer.Structured(g.Out, o.format, me)
	}
	return printMe(g, me)
}

func fmtLimits(l adminclient.Limits) string {
	return fmt.Sprintf("rpm %s, tpm %s, max-concurrency %s, batch-rpm %s, batch-tpm %s", fmtLimit(l.RPM), fmtLimit(l.TPM),
		fmtLimit(l.MaxConcurrency), fmtLimit(l.BatchRPM), fmtLimit(l.BatchTPM))
}

func printMe(g *globals, me adminclient.Me) error {
	exp := "never"
	if me.ExpiresAt != nil {
		exp = me.ExpiresAt.Format(time.RFC3339)
	}
	tw := printer.TableWriter(g.Out)
	tw.Row("tenant:", fmt.Sprintf("%s (%s)", me.Tenant, me.TenantID))
	tw.Row("key:", me.KeyID)
	tw.Row("role:", me.Role)
	tw.Row("models:", fmtModels(me.Models))
	tw.Row("expires:", exp)
	tw.Row("key limits:", fmtLimits(me.Limits.Key))
	tw.Row("tenant limits:", fmtLimits(me.Limits.Tenant))
	if b := me.Billing; b != nil {
		tw.Row("balance:", b.Balance.Balance)
		tw.Row("reserved:", b.Balance.Reserved)
		tw.Row("available:", b.Balance.Available)
		tw.Row("spend 24h:", fmt.Sprintf("%s (%d requests)", b.Spend24h.Amount, b.Spend24h.Requests))
		tw.Row("spend 30d:", fmt.Sprintf("%s (%d requests)", b.Spend30d.Amount, b.Spend30d.Requests))
		tw.Row("of it batches 24h:", fmt.Sprintf("%s (%d lines)", b.BatchSpend24h.Amount, b.BatchSpend24h.Requests))
		tw.Row("of it batches 30d:", fmt.Sprintf("%s (%d lines)", b.BatchSpend30d.Amount, b.BatchSpend30d.Requests))
	} else {
		tw.Row("billing:", dash(me.BillingMessage))
	}
	return tw.Flush()
}

func newMeCmd(g *globals) *cobra.Command {
	o := &meOptions{}
	cmd := &cobra.Command{
		Use:   "me",
		Short: "Show what a server knows about an API key: tenant, models, limits, balance and spend",
		Example: `  llmctl me --server https://llm.example.com --api-key sk-llm-…
  LLMCTL_SERVER=http://127.0.0.1:8080 LLMCTL_API_KEY=sk-llm-… llmctl me -o json`,
		Args: cobra.NoArgs,
		RunE: runOptions(g, o),
	}
	o.rf.bind(cmd)
	printer.Bind(cmd, &o.format)
	return cmd
}
