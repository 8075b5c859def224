package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

func newKeysCmd(g *globals) *cobra.Command {
	db, rf := &dbFlag{g: g}, &remoteFlags{}
	cmd := &cobra.Command{Use: "keys", Short: "Manage API keys"}
	db.bind(cmd)
	rf.bind(cmd)
	cmd.AddCommand(newKeysCreateCmd(g, db, rf), newKeysListCmd(g, db, rf), newKeysRevokeCmd(g, db, rf), newKeysLimitsCmd(g, db, rf),
		newKeysUpdateCmd(g, db, rf))
	return cmd
}

// keysCreateOptions is `llmctl keys create --tenant NAME`.
type keysCreateOptions struct {
	db      *dbFlag
	rf      *remoteFlags
	Tenant  string
	Name    string
	Role    string
	Models  []string
	Expires string
	Limits  limitFlags
	// Priority is the key's place in the admission queue (keys_priority.go).
	Priority string

	format    printer.Format
	role      billing.Role
	expiresAt *time.Time
	now       func() time.Time
}

// createdKey is what `keys create` prints: the record plus the secret, once.
type createdKey struct {
	store.Key
	Secret string `json:"key"`
}

func (o *keysCreateOptions) Complete() (err error) {
	if o.role, err = billing.ParseRole(o.Role); err != nil {
		return fmt.Errorf("--role %q: want %s or %s", o.Role, billing.RoleUser, billing.RoleAdmin)
	}
	if err := checkPriorityFlag(o.Priority); err != nil {
		return err
	}
	if o.Expires != "" {
		t, err := parseExpiry(o.Expires, o.now())
		if err != nil {
			return err
		}
		o.expiresAt = &t
	}
	return nil
}

// parseExpiry takes a duration from now ("720h") or an RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--expires %q: duration must be positive", s)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expires %q: want a duration like 720h or an RFC 3339 time", s)
	}
	return t, nil
}

func (o *keysCreateOptions) Validate() error {
	if o.Tenant == "" {
		return fmt.Errorf("--tenant is required")
	}
	for i, m := range o.Models {
		o.Models[i] = strings.TrimSpace(m)
		if o.Models[i] == "" {
			return fmt.Errorf("--models: empty model name")
		}
	}
	return o.Limits.validate()
}

func (o *keysCreateOptions) Run(cmd *cobra.Command, g *globals) error {
	c, err := o.rf.remote(o.db)
	if err != nil {
		return err
	}
	if c != nil {
		return o.runRemote(cmd.Context(), c, g)
	}
	st, err := o.db.open(cmd.Context())
	if err != nil {
		return err
	}
	defer st.Close()
	k, secret, err := st.CreateKey(cmd.Context(), store.NewKey{
		Tenant: o.Tenant, Name: o.Name, Role: o.role, Models: o.Models, Limits: o.Limits.Limits, ExpiresAt: o.expiresAt,
		Priority: o.Priority,
	})
	if err != nil {
		return err
	}
	// Printed before the audit record is written: the secret exists only
	// now, so a failing audit log must not swallow it.
	if err := o.print(g, k, secret); err != nil {
		return err
	}
	return recordAudit(cmd.Context(), st, store.AuditKeyCreate, k.ID, keyAudit{
		Tenant: k.TenantName, Name: k.Name, Role: k.Role, Models: k.Models, Limits: k.Limits, ExpiresAt: k.ExpiresAt,
		Priority: k.Priority,
	})
}

// runRemote creates the key through the admin API, which writes the audit
// record itself (actor: the calling key).
func (o *keysCreateOptions) runRemote(ctx context.Context, c *adminclient.Client, g *globals) error {
	nk := adminclient.NewKey{Name: o.Name, Role: string(o.role), Models: o.Models, Limits: limitsToAPI(o.Limits.Limits),
		Priority: o.Priority}
	if o.expiresAt != nil {
		// The API takes a duration from its own clock; whole seconds are
		// precise enough for an expiry.
		d := o.expiresAt.Sub(o.now()).Round(time.Second)
		if d <= 0 {
			return fmt.Errorf("--expires %q is in the past", o.Expires)
		}
		nk.ExpiresIn = d.String()
	}
	k, err := c.CreateKey(ctx, o.Tenant, nk)
	if err != nil {
		return err
	}
	return o.print(g, keyFromAPI(k.Key), k.Secret)
}

// keyAudit is a key.create record's details: what was granted, never the
// secret or its hash.
type keyAudit struct {
	Tenant    string         `json:"tenant"`
	Name      string         `json:"name,omitempty"`
	Role      billing.Role   `json:"role"`
	Models    []string       `json:"models,omitempty"`
	Limits    billing.Limits `json:"limits"`
	ExpiresAt *time.Time     `json:"expiresAt,omitempty"`
	Priority  string         `json:"priority,omitempty"`
}

func (o *keysCreateOptions) print(g *globals, k store.Key, secret string) error {
	if o.format != printer.Table {
		return printer.Structured(g.Out, o.format, createdKey{Key: k, Secret: secret})
	}
	if err := printKeys(g, o.format, false, k); err != nil {
		return err
	}
	_, err := fmt.Fprintf(g.Out, "\nkey: %s\nStore it now: it is shown only once.\n", secret)
	return err
}

func newKeysCreateCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	o := &keysCreateOptions{db: db, rf: rf, now: time.Now}
	cmd := &cobra.Command{
		Use:   "create --tenant NAME",
		Short: "Create an API key (the secret is printed once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd, g)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Tenant, "tenant", "", "tenant name or id (required)")
	f.StringVar(&o.Name, "name", "", "a label for the key")
	f.StringVar(&o.Role, "role", string(billing.RoleUser), "user (the model API) or admin (the admin API as well)")
	f.StringSliceVar(&o.Models, "models", nil, "models the key may use, comma separated (default: all)")
	f.StringVar(&o.Expires, "expires", "", "expiry: a duration (720h) or an RFC 3339 time (default: never)")
	f.StringVar(&o.Priority, "priority", "", "place in the admission queue: high, normal or low (default: the config's for its tenant, else normal)")
	o.Limits.bind(cmd)
	printer.Bind(cmd, &o.format)
	return cmd
}

func newKeysListCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	var (
		tenant string
		format printer.Format
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List API keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := rf.remote(db)
			if err != nil {
				return err
			}
			if c != nil {
				ks, err := listKeysRemote(cmd.Context(), c, tenant)
				if err != nil {
					return err
				}
				return printKeys(g, format, true, ks...)
			}
			st, err := db.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ks, err := st.ListKeys(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			return printKeys(g, format, true, ks...)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's keys")
	printer.Bind(cmd, &format)
	return cmd
}

func newKeysRevokeCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API key (takes effect on every gateway within a second)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			// Accept the full key too: operators often have only that at hand.
			if pid, _, err := store.ParseKey(id); err == nil {
				id = pid
			}
			c, err := rf.remote(db)
			if err != nil {
				return err
			}
			if c != nil {
				if _, err := c.RevokeKey(cmd.Context(), id); err != nil {
					return err
				}
				_, err = fmt.Fprintf(g.Out, "key %s revoked\n", id)
				return err
			}
			st, err := db.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.RevokeKey(cmd.Context(), id); err != nil {
				return err
			}
			if err := recordAudit(cmd.Context(), st, store.AuditKeyRevoke, id, nil); err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.Out, "key %s revoked\n", id)
			return err
		},
	}
}

func newKeysLimitsCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	return newLimitsCmd(g, db, rf, "limits ID", "Set a key's rate limits (0 = the config's key default; tenant limits apply as well)",
		func(ctx context.Context, c *adminclient.Client, id string, l billing.Limits, f printer.Format) error {
			k, err := c.SetKeyLimits(ctx, id, limitsToAPI(l))
			if err != nil {
				return err
			}
			return printKeys(g, f, false, keyFromAPI(k))
		},
		func(ctx context.Context, st store.Store, id string, l billing.Limits, f printer.Format) error {
			k, err := st.SetKeyLimits(ctx, id, l)
			if err != nil {
				return err
			}
			if err := recordAudit(ctx, st, store.AuditKeyUpdate, k.ID, map[string]any{"limits": l}); err != nil {
				return err
			}
			return printKeys(g, f, false, k)
		})
}

// listKeysRemote lists one tenant's keys, or every tenant's: the admin API
// lists keys per tenant only.
func listKeysRemote(ctx context.Context, c *adminclient.Client, tenant string) ([]store.Key, error) {
	tenants := []string{tenant}
	if tenant == "" {
		ts, err := c.ListTenants(ctx)
		if err != nil {
			return nil, err
		}
		tenants = tenants[:0]
		for _, t := range ts {
			tenants = append(tenants, t.Name)
		}
	}
	var out []store.Key
	for _, name := range tenants {
		ks, err := c.ListKeys(ctx, name)
		if err != nil {
			return nil, err
		}
		for _, k := range ks {
			out = append(out, keyFromAPI(k))
		}
	}
	return out, nil
}

// printKeys prints keys; a list command (list) prints a list for -o json|yaml
// even when it has one item or none, so scripts can rely on the shape.
func printKeys(g *globals, f printer.Format, list bool, ks ...store.Key) error {
	if f != printer.Table {
		if list {
			return printer.Structured(g.Out, f, append([]store.Key{}, ks...))
		}
		return printer.Items(g.Out, f, ks)
	}
	tw := printer.TableWriter(g.Out, "id", "tenant", "name", "role", "models", "rpm", "tpm", "max-concurrency", "batch-rpm",
		"batch-tpm", "expires", "status")
	for _, k := range ks {
		exp, status := "never", "active"
		if k.ExpiresAt != nil {
			exp = k.ExpiresAt.Format(time.RFC3339)
			if !time.Now().Before(*k.ExpiresAt) {
				status = "expired"
			}
		}
		if k.RevokedAt != nil {
			status = "revoked"
		}
		name := k.Name
		if name == "" {
			name = "-"
		}
		tw.Row(k.ID, k.TenantName, name, string(k.Role), fmtModels(k.Models), fmtLimit(k.Limits.RPM), fmtLimit(k.Limits.TPM),
			fmtLimit(k.Limits.MaxConcurrency), fmtLimit(k.Limits.BatchRPM), fmtLimit(k.Limits.BatchTPM), exp, status)
	}
	return tw.Flush()
}
