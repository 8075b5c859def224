package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve/admin"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

func newVouchersCmd(g *globals) *cobra.Command {
	db, rf := &dbFlag{g: g}, &remoteFlags{}
	cmd := &cobra.Command{Use: "vouchers", Short: "Create, list and revoke prepaid vouchers (redeemed with POST /v1/me/redeem)"}
	db.bind(cmd)
	rf.bind(cmd)
	cmd.AddCommand(newVouchersCreateCmd(g, db, rf), newVouchersListCmd(g, db, rf), newVouchersRevokeCmd(g, db, rf))
	return cmd
}

// voucherRow is a voucher as printed: the admin API's shape on both --db
// and --server.
type voucherRow = admin.VoucherJSON

func voucherFromAPI(v adminclient.Voucher) voucherRow {
	return voucherRow{Object: "voucher", ID: v.ID, Code: v.Code, Amount: v.Amount, AmountMicros: v.AmountMicros, Tenant: v.Tenant,
		State: v.State, CreatedAt: v.CreatedAt, ExpiresAt: v.ExpiresAt, RedeemedAt: v.RedeemedAt, RedeemedBy: v.RedeemedBy, RevokedAt: v.RevokedAt}
}

func vouchersFromAPI(vs []adminclient.Voucher) []voucherRow {
	out := make([]voucherRow, len(vs))
	for i, v := range vs {
		out[i] = voucherFromAPI(v)
	}
	return out
}

// vouchersCreateOptions is `llmctl vouchers create --amount 10 [--count N]
// [--expires 2160h] [--tenant T]`.
type vouchersCreateOptions struct {
	db      *dbFlag
	rf      *remoteFlags
	Amount  string
	Count   int
	Expires time.Duration
	Tenant  string

	amount ledger.Micros
	format printer.Format
}

func (o *vouchersCreateOptions) Complete(_ []string) (err error) {
	if o.Amount == "" {
		return errors.New("--amount is required: currency units each voucher credits, such as 10 or 12.50")
	}
	if o.amount, err = ledger.ParseMicros(o.Amount); err != nil {
		return fmt.Errorf("--amount: %w", err)
	}
	return nil
}

func (o *vouchersCreateOptions) Validate() error {
	switch {
	case o.amount <= 0:
		return errors.New("--amount must be positive")
	case o.Count < 1 || o.Count > ledger.MaxVouchersPerIssue:
		return fmt.Errorf("--count must be 1 to %d", ledger.MaxVouchersPerIssue)
	case o.Expires < 0:
		return errors.New("--expires must not be negative (0: never)")
	}
	return nil
}

func (o *vouchersCreateOptions) Run(cmd *cobra.Command, g *globals) error {
	ctx := cmd.Context()
	rc, err := o.rf.remote(o.db)
	if err != nil {
		return err
	}
	var rows []voucherRow
	if rc != nil {
		n := adminclient.NewVouchers{Amount: o.amount.String(), Count: o.Count, Tenant: o.Tenant}
		if o.Expires > 0 {
			n.ExpiresIn = o.Expires.String()
		}
		vs, err := rc.CreateVouchers(ctx, n)
		if err != nil {
			return err
		}
		rows = vouchersFromAPI(vs)
	} else if rows, err = o.createDB(ctx); err != nil {
		return err
	}
	// The codes exist nowhere else: said on stderr, so -o json stays clean.
	fmt.Fprintf(g.ErrOut, "%d voucher code(s) follow; they are shown only now (stored hashed), keep them safe\n", len(rows))
	if o.format != printer.Table {
		return printer.Structured(g.Out, o.format, rows)
	}
	tw := printer.TableWriter(g.Out, "code", "id", "amount", "tenant", "expires")
	for _, r := range rows {
		tw.Row(r.Code, r.ID, r.Amount, dash(r.Tenant), timeOrDash(r.ExpiresAt))
	}
	return tw.Flush()
}

func (o *vouchersCreateOptions) createDB(ctx context.Context) ([]voucherRow, error) {
	c, err := o.db.openLedger(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var tenantID, tenantName string
	if o.Tenant != "" {
		t, err := c.st.GetTenant(ctx, o.Tenant)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: %w", o.Tenant, err)
		}
		tenantID, tenantName = t.ID, t.Name
	}
	now := time.Now()
	issued, err := ledger.IssueVouchers(ctx, c.lg, ledger.IssueRequest{Amount: o.amount, Count: o.Count, TenantID: tenantID, Expires: o.Expires, Now: now})
	if err != nil {
		return nil, err
	}
	rows := make([]voucherRow, len(issued))
	for i, v := range issued {
		rows[i] = admin.VoucherOut(v.Voucher, v.Code, map[string]string{tenantID: tenantName}, now)
	}
	return rows, recordAudit(ctx, c.st, admin.AuditVoucherCreate, tenantName, admin.VoucherAuditDetails(issued))
}

func newVouchersCreateCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	o := &vouchersCreateOptions{db: db, rf: rf}
	cmd := &cobra.Command{
		Use:   "create --amount AMOUNT",
		Short: "Create vouchers and print their codes, once",
		Args:  cobra.NoArgs,
		RunE:  runOptions(g, o),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Amount, "amount", "", "currency units each voucher credits, such as 10 or 12.50 (required)")
	fl.IntVar(&o.Count, "count", 1, fmt.Sprintf("how many vouchers (at most %d)", ledger.MaxVouchersPerIssue))
	fl.DurationVar(&o.Expires, "expires", 0, "expire this long after creation, such as 2160h (default: never)")
	fl.StringVar(&o.Tenant, "tenant", "", "only this tenant may redeem them (default: any)")
	printer.Bind(cmd, &o.format)
	return cmd
}

func newVouchersListCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	var (
		format printer.Format
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List vouchers, newest first, with their state (never their codes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return errors.New("--limit must not be negative")
			}
			rows, err := listVouchers(cmd.Context(), db, rf, limit)
			if err != nil {
				return err
			}
			if format != printer.Table {
				if rows == nil {
					rows = []voucherRow{}
				}
				return printer.Structured(g.Out, format, rows)
			}
			tw := printer.TableWriter(g.Out, "id", "amount", "state", "tenant", "created", "expires", "redeemed by")
			for _, r := range rows {
				tw.Row(r.ID, r.Amount, r.State, dash(r.Tenant), r.CreatedAt.Format(time.RFC3339), timeOrDash(r.ExpiresAt), dash(r.RedeemedBy))
			}
			return tw.Flush()
		},
	}
	printer.Bind(cmd, &format)
	cmd.Flags().IntVar(&limit, "limit", 0, "show at most this many (0: all)")
	return cmd
}

func listVouchers(ctx context.Context, db *dbFlag, rf *remoteFlags, limit int) ([]voucherRow, error) {
	rc, err := rf.remote(db)
	if err != nil {
		return nil, err
	}
	if rc != nil {
		vs, err := rc.ListVouchers(ctx, limit)
		return vouchersFromAPI(vs), err
	}
	c, err := db.openLedger(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	vs, err := c.lg.Vouchers(ctx, ledger.VoucherFilter{Limit: limit})
	if err != nil {
		return nil, err
	}
	names, err := c.names(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rows := make([]voucherRow, len(vs))
	for i, v := range vs {
		rows[i] = admin.VoucherOut(v, "", names, now)
	}
	return rows, nil
}

func newVouchersRevokeCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	var format printer.Format
	cmd := &cobra.Command{
		Use:   "revoke ID...",
		Short: "Make unredeemed vouchers unusable",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rows, err := revokeVouchers(cmd.Context(), db, rf, args)
			if format != printer.Table && err == nil {
				return printer.Structured(g.Out, format, rows)
			}
			for _, r := range rows {
				fmt.Fprintf(g.Out, "voucher %s revoked (%s)\n", r.ID, r.Amount)
			}
			return err
		},
	}
	printer.Bind(cmd, &format)
	return cmd
}

// revokeVouchers revokes each id in turn, stopping at the first failure
// (the ones before it stay revoked and are returned).
func revokeVouchers(ctx context.Context, db *dbFlag, rf *remoteFlags, ids []string) ([]voucherRow, error) {
	var rows []voucherRow
	rc, err := rf.remote(db)
	if err != nil {
		return nil, err
	}
	if rc != nil {
		for _, id := range ids {
			v, err := rc.RevokeVoucher(ctx, id)
			if err != nil {
				return rows, err
			}
			rows = append(rows, voucherFromAPI(v))
		}
		return rows, nil
	}
	c, err := db.openLedger(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	names, err := c.names(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		now := time.Now()
		v, err := c.lg.RevokeVoucher(ctx, strings.TrimSpace(id), now)
		if err != nil {
			return rows, err
		}
		if err := recordAudit(ctx, c.st, admin.AuditVoucherRevoke, v.ID, map[string]any{"amount": v.Amount.String()}); err != nil {
			return rows, err
		}
		rows = append(rows, admin.VoucherOut(v, "", names, now))
	}
	return rows, nil
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}
