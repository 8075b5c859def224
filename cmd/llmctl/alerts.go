package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

func newAlertsCmd(g *globals) *cobra.Command {
	db, rf := &dbFlag{g: g}, &remoteFlags{}
	cmd := &cobra.Command{Use: "alerts", Short: "Inspect and resend alert webhooks; set tenants' low-balance thresholds"}
	db.bind(cmd)
	rf.bind(cmd)
	cmd.AddCommand(newAlertsDeliveriesCmd(g, db, rf), newAlertsRedeliverCmd(g, db, rf), newAlertsThresholdCmd(g, db, rf))
	return cmd
}

// alertsConn is --server's admin API, or the outbox and store on --db.
type alertsConn struct {
	c  *adminclient.Client
	lc *ledgerConn
	ob ledger.Outbox
}

func openAlerts(ctx context.Context, db *dbFlag, rf *remoteFlags) (*alertsConn, error) {
	c, err := rf.remote(db)
	if err != nil || c != nil {
		return &alertsConn{c: c}, err
	}
	lc, err := db.openLedger(ctx)
	if err != nil {
		return nil, err
	}
	ob, ok := ledger.OutboxOf(lc.lg)
	if !ok {
		lc.Close()
		return nil, errors.New("this ledger database has no alerts outbox")
	}
	return &alertsConn{lc: lc, ob: ob}, nil
}

func (a *alertsConn) Close() {
	if a.lc != nil {
		a.lc.Close()
	}
}

// deliveryFromLedger is a --db row in the admin API's shape, so both print
// the same.
func deliveryFromLedger(d ledger.Delivery) adminclient.Delivery {
	out := adminclient.Delivery{ID: d.ID, EventID: d.EventID, Type: d.EventType, TenantID: d.TenantID, Endpoint: d.Endpoint,
		Status: string(d.Status), Attempts: d.Attempts, LastStatusCode: d.LastStatus, LastError: d.LastError,
		DeliveredAt: d.DeliveredAt, CreatedAt: d.Created}
	if d.Status == ledger.DeliveryPending {
		next := d.NextAttempt
		out.NextAttemptAt = &next
	}
	return out
}

// alertsDeliveriesOptions is `llmctl alerts deliveries`: the delivery log.
type alertsDeliveriesOptions struct {
	db     *dbFlag
	rf     *remoteFlags
	Status string
	Tenant string
	Limit  int
	format printer.Format
}

func (o *alertsDeliveriesOptions) Complete(_ []string) (err error) {
	return nil
}

func (o *alertsDeliveriesOptions) Validate() error {
	switch ledger.DeliveryStatus(o.Status) {
	case "", ledger.DeliveryPending, ledger.DeliveryDelivered, ledger.DeliveryFailed:
	default:
		return fmt.Errorf("--status %q: want pending, delivered or failed", o.Status)
	}
	if o.Limit < 1 || o.Limit > 1000 {
		return fmt.Errorf("--limit %d: want 1 to 1000", o.Limit)
	}
	return nil
}

func (o *alertsDeliveriesOptions) Run(cmd *cobra.Command, g *globals) error {
	ctx := cmd.Context()
	ds, err := o.list(ctx)
	if err != nil {
		return err
	}
	if o.format != printer.Table {
		return printer.Structured(g.Out, o.format, ds)
	}
	tw := printer.TableWriter(g.Out, "id", "status", "type", "tenant", "attempts", "last", "when", "endpoint", "event")
	for _, d := range ds {
		when, last := "", dash(d.LastError)
		switch {
		case d.DeliveredAt != nil:
			when = "delivered " + d.DeliveredAt.Format(time.RFC3339)
		case d.NextAttemptAt != nil:
			when = "next " + d.NextAttemptAt.Format(time.RFC3339)
		default:
			when = "gave up"
		}
		if d.LastStatusCode != 0 {
			last = strconv.Itoa(d.LastStatusCode)
		}
		tw.Row(strconv.FormatInt(d.ID, 10), d.Status, d.Type, dash(d.TenantID), strconv.Itoa(d.Attempts), last, when, d.Endpoint, d.EventID)
	}
	return tw.Flush()
}

func (o *alertsDeliveriesOptions) list(ctx context.Context) ([]adminclient.Delivery, error) {
	a, err := openAlerts(ctx, o.db, o.rf)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if a.c != nil {
		ds, _, err := a.c.Deliveries(ctx, adminclient.DeliveryQuery{Status: o.Status, Tenant: o.Tenant, Limit: o.Limit})
		return ds, err
	}
	f := ledger.DeliveryFilter{Status: ledger.DeliveryStatus(o.Status), Limit: o.Limit}
	if o.Tenant != "" {
		t, err := a.lc.st.GetTenant(ctx, o.Tenant)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", o.Tenant, err)
		}
		f.TenantID = t.ID
	}
	ds, err := a.ob.Deliveries(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]adminclient.Delivery, 0, len(ds))
	for _, d := range ds {
		out = append(out, deliveryFromLedger(d))
	}
	return out, nil
}

func newAlertsDeliveriesCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	o := &alertsDeliveriesOptions{db: db, rf: rf}
	cmd := &cobra.Command{
		Use:     "deliveries",
		Short:   "List alert deliveries, newest first: status, attempts, the receiver's last answer",
		Example: "  llmctl alerts deliveries --status failed\n  llmctl alerts deliveries --tenant acme -o json",
		Args:    cobra.NoArgs,
		RunE:    runOptions(g, o),
	}
	f := cmd.Flags()
	f.StringVar(&o.Status, "status", "", "only pending, delivered or failed deliveries")
	f.StringVar(&o.Tenant, "tenant", "", "only this tenant's events (name or id)")
	f.IntVar(&o.Limit, "limit", 50, "at most this many (1 to 1000)")
	printer.Bind(cmd, &o.format)
	return cmd
}

// alertsRedeliverOptions is `llmctl alerts redeliver ID`.
type alertsRedeliverOptions struct {
	db     *dbFlag
	rf     *remoteFlags
	id     int64
	format printer.Format
}

func (o *alertsRedeliverOptions) Complete(args []string) (err error) {
	if o.id, err = strconv.ParseInt(args[0], 10, 64); err != nil || o.id < 1 {
		return fmt.Errorf("delivery id %q: want the number in the id column of llmctl alerts deliveries", args[0])
	}
	return nil
}

func (o *alertsRedeliverOptions) Validate() error { return nil }

func (o *alertsRedeliverOptions) Run(cmd *cobra.Command, g *globals) error {
	ctx := cmd.Context()
	a, err := openAlerts(ctx, o.db, o.rf)
	if err != nil {
		return err
	}
	defer a.Close()
	var d adminclient.Delivery
	if a.c != nil {
		if d, err = a.c.Redeliver(ctx, o.id); err != nil {
			return err
		}
	} else {
		ld, err := a.ob.Redeliver(ctx, o.id, time.Now())
		if errors.Is(err, ledger.ErrNoDelivery) {
			return fmt.Errorf("delivery %d not found: see llmctl alerts deliveries", o.id)
		}
		if err != nil {
			return err
		}
		d = deliveryFromLedger(ld)
		if err := recordAudit(ctx, a.lc.st, store.AuditAlertsRedeliver, strconv.FormatInt(o.id, 10),
			map[string]any{"event_id": d.EventID, "endpoint": d.Endpoint}); err != nil {
			return err
		}
	}
	if o.format != printer.Table {
		return printer.Structured(g.Out, o.format, d)
	}
	fmt.Fprintf(g.Out, "delivery %d (%s, event %s) to %s is pending again; the gateway sends it within its next round\n",
		d.ID, d.Type, d.EventID, d.Endpoint)
	return nil
}

func newAlertsRedeliverCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	o := &alertsRedeliverOptions{db: db, rf: rf}
	cmd := &cobra.Command{
		Use:   "redeliver ID",
		Short: "Send a delivery again (same webhook-id), with a fresh 24 h of retries",
		Args:  cobra.ExactArgs(1),
		RunE:  runOptions(g, o),
	}
	printer.Bind(cmd, &o.format)
	return cmd
}

// alertsThresholdOptions is `llmctl alerts threshold TENANT`: show, set
// (--low-balance) or drop (--default) the tenant's own balance.low threshold.
type alertsThresholdOptions struct {
	db         *dbFlag
	rf         *remoteFlags
	LowBalance string
	Default    bool
	tenant     string
	amount     *ledger.Micros
	set        func(string) bool
	format     printer.Format
}

func (o *alertsThresholdOptions) Complete(args []string) (err error) {
	o.tenant = args[0]
	if o.set("low-balance") {
		m, err := ledger.ParseMicros(o.LowBalance)
		if err != nil {
			return fmt.Errorf("--low-balance: %w", err)
		}
		o.amount = &m
	}
	return nil
}

func (o *alertsThresholdOptions) Validate() error {
	if o.amount != nil && o.Default {
		return errors.New("--low-balance and --default both given: use one")
	}
	if o.amount != nil && *o.amount < 0 {
		return fmt.Errorf("--low-balance %s: must not be negative (0 turns balance.low off for the tenant)", o.LowBalance)
	}
	return nil
}

func (o *alertsThresholdOptions) Run(cmd *cobra.Command, g *globals) error {
	ctx := cmd.Context()
	a, err := openAlerts(ctx, o.db, o.rf)
	if err != nil {
		return err
	}
	defer a.Close()
	write := o.amount != nil || o.Default
	var out adminclient.TenantAlerts
	if a.c != nil {
		switch {
		case write && o.amount != nil:
			s := o.amount.String()
			out, err = a.c.SetTenantLowBalance(ctx, o.tenant, &s)
		case write:
			out, err = a.c.SetTenantLowBalance(ctx, o.tenant, nil)
		default:
			out, err = a.c.TenantAlerts(ctx, o.tenant)
		}
		if err != nil {
			return err
		}
	} else if out, err = o.local(ctx, a, write); err != nil {
		return err
	}
	if o.format != printer.Table {
		return printer.Structured(g.Out, o.format, out)
	}
	if out.Source == "tenant" {
		fmt.Fprintf(g.Out, "tenant %s: balance.low below %s (its own threshold)\n", out.Tenant, out.LowBalance)
	} else if out.LowBalance == "" {
		fmt.Fprintf(g.Out, "tenant %s: the gateway's default threshold (alerts.lowBalance in its config)\n", out.Tenant)
	} else {
		fmt.Fprintf(g.Out, "tenant %s: balance.low below %s (the gateway's default)\n", out.Tenant, out.LowBalance)
	}
	return nil
}

// local reads or writes the threshold on --db. The default is the serve
// configuration's, which the database does not know: it shows as empty.
func (o *alertsThresholdOptions) local(ctx context.Context, a *alertsConn, write bool) (adminclient.TenantAlerts, error) {
	t, err := a.lc.st.GetTenant(ctx, o.tenant)
	if err != nil {
		return adminclient.TenantAlerts{}, fmt.Errorf("tenant %s: %w", o.tenant, err)
	}
	if write {
		if err := a.ob.SetTenantLowBalance(ctx, t.ID, o.amount, time.Now()); err != nil {
			return adminclient.TenantAlerts{}, err
		}
		details := map[string]any{"low_balance": nil}
		if o.amount != nil {
			details["low_balance"] = o.amount.String()
		}
		if err := recordAudit(ctx, a.lc.st, store.AuditAlertsThreshold, t.Name, details); err != nil {
			return adminclient.TenantAlerts{}, err
		}
	}
	v, own, err := a.ob.TenantLowBalance(ctx, t.ID)
	if err != nil {
		return adminclient.TenantAlerts{}, err
	}
	if !own {
		return adminclient.TenantAlerts{Tenant: t.Name, Source: "default"}, nil
	}
	return adminclient.TenantAlerts{Tenant: t.Name, LowBalance: v.String(), LowBalanceMicros: int64(v), Source: "tenant"}, nil
}

func newAlertsThresholdCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	o := &alertsThresholdOptions{db: db, rf: rf}
	cmd := &cobra.Command{
		Use:   "threshold TENANT",
		Short: "Show or set a tenant's balance.low threshold (its own, or the gateway's default)",
		Example: "  llmctl alerts threshold acme --low-balance 2.00\n  llmctl alerts threshold acme --low-balance 0   # no balance.low for acme\n" +
			"  llmctl alerts threshold acme --default",
		Args: cobra.ExactArgs(1),
		RunE: runOptions(g, o),
	}
	f := cmd.Flags()
	f.StringVar(&o.LowBalance, "low-balance", "", "the tenant's own threshold in currency units; 0 turns balance.low off for it")
	f.BoolVar(&o.Default, "default", false, "drop the tenant's own threshold: the gateway's default applies")
	printer.Bind(cmd, &o.format)
	o.set = f.Changed
	return cmd
}
