package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

func newTenantsCmd(g *globals) *cobra.Command {
	db := &dbFlag{}
	cmd := &cobra.Command{Use: "tenants", Short: "Manage tenants (customer accounts)"}
	db.bind(cmd)
	cmd.AddCommand(newTenantsCreateCmd(g, db), newTenantsListCmd(g, db), newTenantsLimitsCmd(g, db))
	return cmd
}

// tenantsCreateOptions is `llmctl tenants create NAME`.
type tenantsCreateOptions struct {
	db     *dbFlag
	Name   string
	Limits limitFlags
	Output string
	format printer.Format
}

func (o *tenantsCreateOptions) Complete(args []string) (err error) {
	o.Name = args[0]
	o.format, err = printer.Parse(o.Output)
	return err
}

func (o *tenantsCreateOptions) Validate() error {
	if err := store.ValidateName("tenant", o.Name); err != nil {
		return err
	}
	return o.Limits.validate()
}

func (o *tenantsCreateOptions) Run(cmd *cobra.Command, g *globals) error {
	st, err := o.db.open(cmd.Context())
	if err != nil {
		return err
	}
	defer st.Close()
	t, err := st.CreateTenant(cmd.Context(), o.Name, o.Limits.Limits)
	if err != nil {
		return err
	}
	return printTenants(g, o.format, t)
}

func newTenantsCreateCmd(g *globals, db *dbFlag) *cobra.Command {
	o := &tenantsCreateOptions{db: db}
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a tenant",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd, g)
		},
	}
	o.Limits.bind(cmd)
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: table, json, yaml")
	return cmd
}

func newTenantsListCmd(g *globals, db *dbFlag) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tenants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := printer.Parse(output)
			if err != nil {
				return err
			}
			st, err := db.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ts, err := st.ListTenants(cmd.Context())
			if err != nil {
				return err
			}
			return printTenants(g, f, ts...)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: table, json, yaml")
	return cmd
}

func newTenantsLimitsCmd(g *globals, db *dbFlag) *cobra.Command {
	return newLimitsCmd(g, db, "limits NAME", "Set a tenant's rate limits (0 = config default)",
		func(ctx context.Context, st store.Store, name string, l billing.Limits, f printer.Format) error {
			t, err := st.SetTenantLimits(ctx, name, l)
			if err != nil {
				return err
			}
			return printTenants(g, f, t)
		})
}

func printTenants(g *globals, f printer.Format, ts ...store.Tenant) error {
	if f != printer.Table {
		return printer.Items(g.Out, f, ts)
	}
	tw := printer.TableWriter(g.Out, "id", "name", "rpm", "tpm", "max-concurrency", "created")
	for _, t := range ts {
		tw.Row(t.ID, t.Name, fmtLimit(t.Limits.RPM), fmtLimit(t.Limits.TPM), fmtLimit(t.Limits.MaxConcurrency),
			t.CreatedAt.Format("2006-01-02T15:04:05Z"))
	}
	return tw.Flush()
}
