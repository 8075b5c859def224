package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

func newTenantsCmd(g *globals) *cobra.Command {
	db, rf := &dbFlag{g: g}, &remoteFlags{}
	cmd := &cobra.Command{Use: "tenants", Short: "Manage tenants (customer accounts)"}
	db.bind(cmd)
	rf.bind(cmd)
	cmd.AddCommand(newTenantsCreateCmd(g, db, rf), newTenantsListCmd(g, db, rf), newTenantsLimitsCmd(g, db, rf),
		newTenantsSuspendCmd(g, db, rf, true), newTenantsSuspendCmd(g, db, rf, false))
	return cmd
}

// tenantArg is what every command on one tenant shares: NAME and -o.
type tenantArg struct {
	db     *dbFlag
	rf     *remoteFlags
	Name   string
	format printer.Format
}

func (o *tenantArg) Complete(args []string) (err error) {
	o.Name = args[0]
	return nil
}

// tenantsCreateOptions is `llmctl tenants create NAME`.
type tenantsCreateOptions struct {
	tenantArg
	Limits limitFlags
}

func (o *tenantsCreateOptions) Validate() error {
	if err := store.ValidateName("tenant", o.Name); err != nil {
		return err
	}
	return o.Limits.validate()
}

func (o *tenantsCreateOptions) Run(cmd *cobra.Command, g *globals) error {
	c, err := o.rf.remote(o.db)
	if err != nil {
		return err
	}
	if c != nil {
		t, err := c.CreateTenant(cmd.Context(), o.Name, limitsToAPI(o.Limits.Limits))
		if err != nil {
			return err
		}
		return printTenants(g, o.format, false, tenantFromAPI(t))
	}
	st, err := o.db.open(cmd.Context())
	if err != nil {
		return err
	}
	defer st.Close()
	t, err := st.CreateTenant(cmd.Context(), o.Name, o.Limits.Limits)
	if err != nil {
		return err
	}
	if err := recordAudit(cmd.Context(), st, store.AuditTenantCreate, t.Name, map[string]any{"id": t.ID, "limits": t.Limits}); err != nil {
		return err
	}
	return printTenants(g, o.format, false, t)
}

func newTenantsCreateCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	o := &tenantsCreateOptions{tenantArg: tenantArg{db: db, rf: rf}}
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a tenant",
		Args:  cobra.ExactArgs(1),
		RunE:  runOptions(g, o),
	}
	o.Limits.bind(cmd)
	printer.Bind(cmd, &o.format)
	return cmd
}

func newTenantsListCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	var format printer.Format
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tenants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := rf.remote(db)
			if err != nil {
				return err
			}
			if c != nil {
				ts, err := c.ListTenants(cmd.Context())
				if err != nil {
					return err
				}
				out := make([]store.Tenant, 0, len(ts))
				for _, t := range ts {
					out = append(out, tenantFromAPI(t))
				}
				return printTenants(g, format, true, out...)
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
			return printTenants(g, format, true, ts...)
		},
	}
	printer.Bind(cmd, &format)
	return cmd
}

func newTenantsLimitsCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	return newLimitsCmd(g, db, rf, "limits NAME", "Set a tenant's rate limits (0 = config default)",
		func(ctx context.Context, c *adminclient.Client, name string, l billing.Limits, f printer.Format) error {
			t, err := c.SetTenantLimits(ctx, name, limitsToAPI(l))
			if err != nil {
				return err
			}
			return printTenants(g, f, false, tenantFromAPI(t))
		},
		func(ctx context.Context, st store.Store, name string, l billing.Limits, f printer.Format) error {
			t, err := st.SetTenantLimits(ctx, name, l)
			if err != nil {
				return err
			}
			if err := recordAudit(ctx, st, store.AuditTenantLimits, t.Name, map[string]any{"id": t.ID, "limits": l}); err != nil {
				return err
			}
			return printTenants(g, f, false, t)
		})
}

// tenantsSuspendOptions is `llmctl tenants suspend|resume NAME`.
type tenantsSuspendOptions struct {
	tenantArg
	suspend bool // false: resume
}

func (o *tenantsSuspendOptions) Validate() error {
	if o.Name == "" {
		return fmt.Errorf("tenant name or id is empty")
	}
	return nil
}

func (o *tenantsSuspendOptions) Run(cmd *cobra.Command, g *globals) error {
	c, err := o.rf.remote(o.db)
	if err != nil {
		return err
	}
	if c != nil {
		call := c.ResumeTenant
		if o.suspend {
			call = c.SuspendTenant
		}
		t, err := call(cmd.Context(), o.Name)
		if err != nil {
			return err
		}
		return printTenants(g, o.format, false, tenantFromAPI(t))
	}
	st, err := o.db.open(cmd.Context())
	if err != nil {
		return err
	}
	defer st.Close()
	set, action := st.ResumeTenant, store.AuditTenantResume
	if o.suspend {
		set, action = st.SuspendTenant, store.AuditTenantSuspend
	}
	t, err := set(cmd.Context(), o.Name)
	if err != nil {
		return err
	}
	if err := recordAudit(cmd.Context(), st, action, t.Name, map[string]any{"id": t.ID}); err != nil {
		return err
	}
	return printTenants(g, o.format, false, t)
}

func newTenantsSuspendCmd(g *globals, db *dbFlag, rf *remoteFlags, suspend bool) *cobra.Command {
	o := &tenantsSuspendOptions{tenantArg: tenantArg{db: db, rf: rf}, suspend: suspend}
	use, short := "resume NAME", "Resume a suspended tenant: its keys work again"
	if suspend {
		use, short = "suspend NAME", "Suspend a tenant: its keys stop working on every gateway within a second; keys and ledger are kept"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE:  runOptions(g, o),
	}
	printer.Bind(cmd, &o.format)
	return cmd
}

// printTenants prints tenants; a list command (list) prints a list for -o json|yaml
// even when it has one item or none, so scripts can rely on the shape.
func printTenants(g *globals, f printer.Format, list bool, ts ...store.Tenant) error {
	if f != printer.Table {
		if list {
			return printer.Structured(g.Out, f, append([]store.Tenant{}, ts...))
		}
		return printer.Items(g.Out, f, ts)
	}
	tw := printer.TableWriter(g.Out, "id", "name", "rpm", "tpm", "max-concurrency", "batch-rpm", "batch-tpm", "created", "status")
	for _, t := range ts {
		status := "active"
		if t.SuspendedAt != nil {
			status = "suspended"
		}
		tw.Row(t.ID, t.Name, fmtLimit(t.Limits.RPM), fmtLimit(t.Limits.TPM), fmtLimit(t.Limits.MaxConcurrency),
			fmtLimit(t.Limits.BatchRPM), fmtLimit(t.Limits.BatchTPM), t.CreatedAt.Format("2006-01-02T15:04:05Z"), status)
	}
	return tw.Flush()
}
