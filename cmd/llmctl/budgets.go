package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve/admin"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

func newBudgetsCmd(g *globals) *cobra.Command {
	db, rf := &dbFlag{g: g}, &remoteFlags{}
	cmd := &cobra.Command{
		Use:   "budgets",
		Short: "Spending caps per tenant or API key that reset each day, week, month or rolling window",
		Long: `A budget caps what a tenant (all its keys) or one API key may spend per
period: a calendar day, ISO week or month in a time zone (default UTC), or a
rolling window. A request whose maximum cost would cross it is refused with
429 budget_exceeded and Retry-After until the reset. Spend is summed from the
ledger, so nothing has to reset it.`,
	}
	db.bind(cmd)
	rf.bind(cmd)
	cmd.AddCommand(newBudgetsSetCmd(g, db, rf), newBudgetsListCmd(g, db, rf), newBudgetsDeleteCmd(g, db, rf))
	return cmd
}

// budgetOwnerOptions is the TENANT argument or --key, shared by the subcommands.
type budgetOwnerOptions struct {
	db     *dbFlag
	rf     *remoteFlags
	Tenant string
	KeyID  string
	format printer.Format
}

func (o *budgetOwnerOptions) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.KeyID, "key", "", "the API key id whose budgets these are, instead of TENANT")
	printer.Bind(cmd, &o.format)
}

func (o *budgetOwnerOptions) Complete(args []string) (err error) {
	if len(args) == 1 {
		o.Tenant = args[0]
	}
	return nil
}

func (o *budgetOwnerOptions) Validate() error {
	if (o.Tenant == "") == (o.KeyID == "") {
		return errors.New("name a TENANT or give --key ID (one of them)")
	}
	return nil
}

func (o *budgetOwnerOptions) owner() adminclient.BudgetOwner {
	return adminclient.BudgetOwner{Tenant: o.Tenant, KeyID: o.KeyID}
}

// budgetDB is the ledger on --db with the owner resolved to its tenant id.
type budgetDB struct {
	*ledgerConn
	tenantID, tenantName, keyID string
}

func (o *budgetOwnerOptions) openDB(ctx context.Context) (*budgetDB, error) {
	c, err := o.db.openLedger(ctx)
	if err != nil {
		return nil, err
	}
	b := &budgetDB{ledgerConn: c}
	if o.KeyID != "" {
		k, err := c.st.GetKey(ctx, o.KeyID)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("API key %q: %w", o.KeyID, err)
		}
		b.tenantID, b.tenantName, b.keyID = k.TenantID, k.TenantName, k.ID
		return b, nil
	}
	t, err := c.st.GetTenant(ctx, o.Tenant)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("tenant %q: %w", o.Tenant, err)
	}
	b.tenantID, b.tenantName = t.ID, t.Name
	return b, nil
}

// list is the owner's budgets with their spend: a tenant's own and its
// keys', or a key's.
func (b *budgetDB) list(ctx context.Context) ([]adminclient.Budget, error) {
	st, err := b.lg.Budgets(ctx, b.tenantID, time.Now())
	if err != nil {
		return nil, err
	}
	out := []adminclient.Budget{}
	for _, s := range st {
		if b.keyID == "" || s.KeyID == b.keyID {
			out = append(out, budgetFromLedger(s, b.tenantName))
		}
	}
	return out, nil
}

// budgetFromLedger renders a budget as the admin API does, so --db and
// --server print the same.
func budgetFromLedger(s ledger.BudgetStatus, tenant string) adminclient.Budget {
	j := admin.BudgetOut(s, tenant)
	return adminclient.Budget{ID: j.ID, Tenant: j.Tenant, KeyID: j.KeyID, Amount: j.Amount, AmountMicros: j.AmountMicros,
		Period: j.Period, TZ: j.TZ, Duration: j.Duration, Spent: j.Spent, SpentMicros: j.SpentMicros, Remaining: j.Remaining,
		RemainingMicros: j.RemainingMicros, PeriodStart: j.PeriodStart, ResetsAt: j.ResetsAt, CreatedAt: j.CreatedAt}
}

func printBudgets(g *globals, f printer.Format, bs []adminclient.Budget) error {
	if f != printer.Table {
		// Always a list: a script reading `budgets list -o json` should not
		// have to tell one budget from several by the shape.
		return printer.Structured(g.Out, f, bs)
	}
	tw := printer.TableWriter(g.Out, "id", "tenant", "key", "period", "amount", "spent", "remaining", "resets")
	for _, b := range bs {
		period := b.Period + " " + b.TZ
		if b.Period == string(ledger.PeriodRolling) {
			period = "rolling " + b.Duration
		}
		tw.Row(b.ID, b.Tenant, dash(b.KeyID), period, b.Amount, b.Spent, b.Remaining, b.ResetsAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

// budgetsSetOptions is `llmctl budgets set TENANT|--key ID --amount A --period P`.
type budgetsSetOptions struct {
	budgetOwnerOptions
	Amount   string
	Period   string
	TZ       string
	Duration time.Duration

	budget ledger.Budget
}

func (o *budgetsSetOptions) Complete(args []string) error {
	if err := o.budgetOwnerOptions.Complete(args); err != nil {
		return err
	}
	amount, err := ledger.ParseMicros(o.Amount)
	if err != nil {
		return fmt.Errorf("--amount: %w", err)
	}
	o.budget = ledger.Budget{TenantID: "-", Amount: amount, Period: ledger.Period(o.Period), TZ: o.TZ, Duration: o.Duration}
	return nil
}

func (o *budgetsSetOptions) Validate() error {
	if err := o.budgetOwnerOptions.Validate(); err != nil {
		return err
	}
	// The owner is resolved later; everything else is checked here, so both
	// paths refuse the same flags with the same words.
	if _, err := o.budget.Normalize(); err != nil {
		return err
	}
	return nil
}

func (o *budgetsSetOptions) Run(cmd *cobra.Command, g *globals) error {
	ctx := cmd.Context()
	rc, err := o.rf.remote(o.db)
	if err != nil {
		return err
	}
	var out adminclient.Budget
	if rc != nil {
		set := adminclient.BudgetSet{Amount: o.budget.Amount.String(), Period: o.Period, TZ: o.TZ}
		if o.Duration != 0 {
			set.Duration = o.Duration.String()
		}
		if out, err = rc.SetBudget(ctx, o.owner(), set); err != nil {
			return err
		}
	} else {
		b, err := o.openDB(ctx)
		if err != nil {
			return err
		}
		defer b.Close()
		o.budget.TenantID, o.budget.KeyID = b.tenantID, b.keyID
		saved, err := b.lg.SetBudget(ctx, o.budget)
		if err != nil {
			return err
		}
		if err := recordAudit(ctx, b.st, admin.AuditBudgetSet, budgetAuditTarget(b), admin.BudgetAuditDetails(saved)); err != nil {
			return err
		}
		bs, err := b.list(ctx)
		if err != nil {
			return err
		}
		for _, x := range bs {
			if x.ID == saved.ID {
				out = x
			}
		}
	}
	if o.format != printer.Table {
		return printer.Structured(g.Out, o.format, out)
	}
	return printBudgets(g, o.format, []adminclient.Budget{out})
}

func budgetAuditTarget(b *budgetDB) string {
	if b.keyID != "" {
		return b.keyID
	}
	return b.tenantName
}

func newBudgetsSetCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	o := &budgetsSetOptions{budgetOwnerOptions: budgetOwnerOptions{db: db, rf: rf}}
	cmd := &cobra.Command{
		Use:   "set [TENANT] --amount A --period day|week|month|rolling",
		Short: "Set a tenant's (or with --key, a key's) budget for a period; the same period and zone replace its amount",
		Example: `  llmctl budgets set acme --amount 50 --period month --tz Europe/Berlin
  llmctl budgets set --key 3f9a1c2b --amount 5 --period rolling --duration 24h`,
		Args: cobra.MaximumNArgs(1),
		RunE: runOptions(g, o),
	}
	o.bind(cmd)
	fl := cmd.Flags()
	fl.StringVar(&o.Amount, "amount", "", "the budget in currency units, e.g. 50 or 12.50 (required)")
	fl.StringVar(&o.Period, "period", "", "day, week (ISO, from Monday), month, or rolling (required)")
	fl.StringVar(&o.TZ, "tz", "", "IANA time zone where calendar periods start (default UTC)")
	fl.DurationVar(&o.Duration, "duration", 0, "window of a rolling budget, e.g. 24h or 168h")
	_ = cmd.MarkFlagRequired("amount")
	_ = cmd.MarkFlagRequired("period")
	return cmd
}

// budgetsListOptions is `llmctl budgets list TENANT|--key ID`.
type budgetsListOptions struct{ budgetOwnerOptions }

func (o *budgetsListOptions) Run(cmd *cobra.Command, g *globals) error {
	ctx := cmd.Context()
	rc, err := o.rf.remote(o.db)
	if err != nil {
		return err
	}
	var bs []adminclient.Budget
	if rc != nil {
		bs, err = rc.Budgets(ctx, o.owner())
	} else {
		var b *budgetDB
		if b, err = o.openDB(ctx); err != nil {
			return err
		}
		defer b.Close()
		bs, err = b.list(ctx)
	}
	if err != nil {
		return err
	}
	if bs == nil {
		bs = []adminclient.Budget{}
	}
	return printBudgets(g, o.format, bs)
}

func newBudgetsListCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	o := &budgetsListOptions{budgetOwnerOptions{db: db, rf: rf}}
	cmd := &cobra.Command{
		Use:   "list [TENANT]",
		Short: "List a tenant's budgets (its own and its keys') or, with --key, a key's, with this period's spend",
		Args:  cobra.MaximumNArgs(1),
		RunE:  runOptions(g, o),
	}
	o.bind(cmd)
	return cmd
}

// budgetsDeleteOptions is `llmctl budgets delete TENANT|--key ID --id B|--all`.
type budgetsDeleteOptions struct {
	budgetOwnerOptions
	ID  string
	All bool
}

func (o *budgetsDeleteOptions) Validate() error {
	if err := o.budgetOwnerOptions.Validate(); err != nil {
		return err
	}
	if (o.ID == "") == !o.All {
		return errors.New("give --id BUDGET (see budgets list) or --all (every budget of the tenant itself, or of --key)")
	}
	return nil
}

func (o *budgetsDeleteOptions) Run(cmd *cobra.Command, g *globals) error {
	ctx := cmd.Context()
	rc, err := o.rf.remote(o.db)
	if err != nil {
		return err
	}
	var n int
	if rc != nil {
		if n, err = rc.DeleteBudgets(ctx, o.owner(), o.ID); err != nil {
			return err
		}
	} else {
		b, err := o.openDB(ctx)
		if err != nil {
			return err
		}
		defer b.Close()
		if n, err = b.lg.DeleteBudgets(ctx, b.tenantID, b.keyID, o.ID); err != nil {
			return err
		}
		if o.ID != "" && n == 0 {
			return fmt.Errorf("budget %q not found among the budgets of %s (see llmctl budgets list)", o.ID, budgetAuditTarget(b))
		}
		if n > 0 {
			if err := recordAudit(ctx, b.st, admin.AuditBudgetDelete, budgetAuditTarget(b), map[string]any{"id": o.ID, "deleted": n}); err != nil {
				return err
			}
		}
	}
	if o.format != printer.Table {
		return printer.Structured(g.Out, o.format, map[string]int{"deleted": n})
	}
	fmt.Fprintf(g.Out, "%d budget(s) deleted\n", n)
	return nil
}

func newBudgetsDeleteCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	o := &budgetsDeleteOptions{budgetOwnerOptions: budgetOwnerOptions{db: db, rf: rf}}
	cmd := &cobra.Command{
		Use:   "delete [TENANT] --id BUDGET|--all",
		Short: "Delete a budget of a tenant (or with --key, of a key), or all of them with --all",
		Args:  cobra.MaximumNArgs(1),
		RunE:  runOptions(g, o),
	}
	o.bind(cmd)
	cmd.Flags().StringVar(&o.ID, "id", "", "the budget's id")
	cmd.Flags().BoolVar(&o.All, "all", false, "delete every budget of the owner (a tenant's own, not its keys')")
	return cmd
}
