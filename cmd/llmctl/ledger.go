package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

func newLedgerCmd(g *globals) *cobra.Command {
	db, rf := &dbFlag{g: g}, &remoteFlags{}
	cmd := &cobra.Command{Use: "ledger", Short: "Inspect and correct the billing ledger"}
	db.bind(cmd)
	rf.bind(cmd)
	cmd.AddCommand(newLedgerBalanceCmd(g, db, rf), newLedgerEntriesCmd(g, db, rf), newLedgerSpendCmd(g, db, rf),
		newLedgerCreditCmd(g, db, rf), newLedgerVerifyCmd(g, db, rf),
		newLedgerReconcileCmd(g, db, rf), newLedgerMarginCmd(g, db, rf))
	return cmd
}

// ledgerConn is the tenants store (for names) and the ledger on one --db,
// sharing one migrated database handle.
type ledgerConn struct {
	db *store.DB
	st store.Store
	lg ledger.Store
}

func (d *dbFlag) openLedger(ctx context.Context) (*ledgerConn, error) {
	dsn, err := d.resolve()
	if err != nil {
		return nil, err
	}
	db, err := store.OpenDB(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &ledgerConn{db: db, st: db.Store(), lg: ledger.OnDB(db)}, nil
}

func (c *ledgerConn) Close() { _ = c.db.Close() }

// names maps tenant ids to names for display.
func (c *ledgerConn) names(ctx context.Context) (map[string]string, error) {
	ts, err := c.st.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(ts))
	for _, t := range ts {
		m[t.ID] = t.Name
	}
	return m, nil
}

// balanceRow is one tenant's balance as printed.
type balanceRow struct {
	TenantID  string `json:"tenantId"`
	Tenant    string `json:"tenant"`
	Balance   string `json:"balance"`
	Reserved  string `json:"reserved"`
	Available string `json:"available"`
	// Micro-unit integers for programs: no decimal parsing needed.
	BalanceMicros  int64 `json:"balanceMicros"`
	ReservedMicros int64 `json:"reservedMicros"`
}

func toBalanceRow(a ledger.Account, name string) balanceRow {
	return balanceRow{TenantID: a.TenantID, Tenant: name, Balance: a.Balance.String(), Reserved: a.Reserved.String(),
		Available: a.Available().String(), BalanceMicros: int64(a.Balance), ReservedMicros: int64(a.Reserved)}
}

func newLedgerBalanceCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	var format printer.Format
	cmd := &cobra.Command{
		Use:   "balance [TENANT]",
		Short: "Show one tenant's balance, or every tenant's",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rc, err := rf.remote(db)
			if err != nil {
				return err
			}
			if rc != nil {
				rows, err := balancesRemote(ctx, rc, args)
				if err != nil {
					return err
				}
				return printBalances(g, format, len(args) == 1, rows)
			}
			c, err := db.openLedger(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			var rows []balanceRow
			if len(args) == 1 {
				t, err := c.st.GetTenant(ctx, args[0])
				if err != nil {
					return fmt.Errorf("tenant %q: %w", args[0], err)
				}
				a, err := c.lg.Account(ctx, t.ID)
				if err != nil {
					return err
				}
				rows = append(rows, toBalanceRow(a, t.Name))
			} else {
				names, err := c.names(ctx)
				if err != nil {
					return err
				}
				as, err := c.lg.Accounts(ctx)
				if err != nil {
					return err
				}
				for _, a := range as {
					rows = append(rows, toBalanceRow(a, names[a.TenantID]))
				}
			}
			return printBalances(g, format, len(args) == 1, rows)
		},
	}
	printer.Bind(cmd, &format)
	return cmd
}

func printBalances(g *globals, f printer.Format, one bool, rows []balanceRow) error {
	if f != printer.Table {
		if one {
			return printer.Structured(g.Out, f, rows[0])
		}
		return printer.Structured(g.Out, f, rows)
	}
	tw := printer.TableWriter(g.Out, "tenant", "id", "balance", "reserved", "available")
	for _, r := range rows {
		tw.Row(r.Tenant, r.TenantID, r.Balance, r.Reserved, r.Available)
	}
	return tw.Flush()
}

// balancesRemote reads one tenant's balance, or every tenant's, through the
// admin API; the tenant read supplies the id the --db output shows.
func balancesRemote(ctx context.Context, c *adminclient.Client, args []string) ([]balanceRow, error) {
	var ts []adminclient.Tenant
	if len(args) == 1 {
		t, err := c.GetTenant(ctx, args[0])
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	} else {
		var err error
		if ts, err = c.ListTenants(ctx); err != nil {
			return nil, err
		}
	}
	rows := make([]balanceRow, 0, len(ts))
	for _, t := range ts {
		b, err := c.Balance(ctx, t.ID)
		if err != nil {
			return nil, err
		}
		rows = append(rows, balanceFromAPI(b, t.ID))
	}
	return rows, nil
}

// ledgerEntriesOptions is `llmctl ledger entries`.
type ledgerEntriesOptions struct {
	db     *dbFlag
	rf     *remoteFlags
	Tenant string
	Since  string
	Limit  int
	// Reverse lists oldest first; --limit still keeps the newest entries.
	Reverse bool

	format printer.Format
	since  time.Time
}

// entryRow is an entry as `ledger entries` prints it: JSON keeps the
// tenant's id (tenant) and adds its name; table and CSV show the name.
type entryRow struct {
	ledger.Entry
	TenantName string `json:"tenantName"`
}

func (o *ledgerEntriesOptions) Complete(now time.Time) (err error) {
	if o.Since != "" {
		if o.since, err = parseSince(o.Since, now); err != nil {
			return err
		}
	}
	return nil
}

func (o *ledgerEntriesOptions) Validate() error {
	if o.Limit < 0 {
		return errors.New("--limit must not be negative")
	}
	return nil
}

// parseSince reads --since: an RFC 3339 time, a date, or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: duration must be positive", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (24h), a date (2026-01-02) or an RFC 3339 time", s)
}

func (o *ledgerEntriesOptions) Run(cmd *cobra.Command, g *globals) error {
	ctx := cmd.Context()
	rc, err := o.rf.remote(o.db)
	if err != nil {
		return err
	}
	var (
		es    []ledger.Entry
		names map[string]string // tenant id -> name
	)
	if rc != nil {
		es, names, err = o.entriesRemote(ctx, rc)
	} else {
		es, names, err = o.entriesDB(ctx)
	}
	if err != nil {
		return err
	}
	// Both sources give the newest first.
	if o.Reverse {
		slices.Reverse(es)
	}
	rows := make([]entryRow, len(es))
	for i, e := range es {
		rows[i] = entryRow{Entry: e, TenantName: names[e.TenantID]}
	}
	switch o.format {
	case printer.JSON:
		return printer.Structured(g.Out, o.format, rows)
	case printer.CSV:
		w := csv.NewWriter(g.Out)
		_ = w.Write([]string{"seq", "time", "tenant", "kind", "amount_micros", "amount", "model", "prompt_tokens", "completion_tokens", "key", "reason",
			"key_id", "end_user", "cached_prompt_tokens", "batch_id"}) // new columns go last: consumers read by position
		for _, e := range rows {
			_ = w.Write([]string{strconv.FormatInt(e.Seq, 10), e.Time.Format(time.RFC3339Nano), cmp.Or(e.TenantName, e.TenantID), string(e.Kind),
				strconv.FormatInt(int64(e.Amount), 10), e.Amount.String(), e.Model,
				strconv.FormatInt(e.PromptTokens, 10), strconv.FormatInt(e.CompletionTokens, 10), e.Key, e.Reason,
				e.KeyID, e.EndUser, strconv.FormatInt(e.CachedPromptTokens, 10), e.BatchID})
		}
		w.Flush()
		return w.Error()
	}
	tw := printer.TableWriter(g.Out, "seq", "time", "tenant", "kind", "amount", "model", "tokens", "batch", "reason")
	for _, e := range rows {
		tokens := "-"
		if e.PromptTokens+e.CompletionTokens > 0 {
			tokens = fmt.Sprintf("%d+%d", e.PromptTokens, e.CompletionTokens)
		}
		if e.CachedPromptTokens > 0 {
			tokens = fmt.Sprintf("%d(%d cached)+%d", e.PromptTokens, e.CachedPromptTokens, e.CompletionTokens)
		}
		tw.Row(strconv.FormatInt(e.Seq, 10), e.Time.Format(time.RFC3339), cmp.Or(e.TenantName, e.TenantID), string(e.Kind), e.Amount.String(),
			dash(e.Model), tokens, dash(e.BatchID), dash(e.Reason))
	}
	return tw.Flush()
}

// entriesDB lists entries newest first (so --limit keeps the latest), with
// the tenants' names by id.
func (o *ledgerEntriesOptions) entriesDB(ctx context.Context) ([]ledger.Entry, map[string]string, error) {
	c, err := o.db.openLedger(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	f := ledger.Filter{Since: o.since, Limit: o.Limit, NewestFirst: true}
	names := map[string]string{}
	if o.Tenant != "" {
		t, err := c.st.GetTenant(ctx, o.Tenant)
		if err != nil {
			return nil, nil, fmt.Errorf("tenant %q: %w", o.Tenant, err)
		}
		f.TenantID, names[t.ID] = t.ID, t.Name
	} else {
		ts, err := c.st.ListTenants(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("list tenants: %w", err)
		}
		for _, t := range ts {
			names[t.ID] = t.Name
		}
	}
	es, err := c.lg.Entries(ctx, f)
	return es, names, err
}

// entriesRemote pages through one tenant's entries (the admin API lists
// them per tenant, newest first, as --db does) until --limit is reached.
// The API does not show an entry's sequence number, so that column is empty.
func (o *ledgerEntriesOptions) entriesRemote(ctx context.Context, c *adminclient.Client) ([]ledger.Entry, map[string]string, error) {
	if o.Tenant == "" {
		return nil, nil, errors.New("llmctl ledger entries with --server needs --tenant: the admin API lists one tenant's entries")
	}
	t, err := c.GetTenant(ctx, o.Tenant)
	if err != nil {
		return nil, nil, err
	}
	var es []ledger.Entry
	q := adminclient.EntryQuery{Since: o.since, Limit: 1000}
	for o.Limit == 0 || len(es) < o.Limit {
		page, next, err := c.Entries(ctx, t.ID, q)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range page {
			es = append(es, ledger.Entry{Time: e.CreatedAt, TenantID: t.ID, Kind: ledger.Kind(e.Kind),
				Amount: ledger.Micros(e.AmountMicros), Model: e.Model, PromptTokens: e.PromptTokens,
				CompletionTokens: e.CompletionTokens, Reason: e.Reason, Key: e.IdempotencyKey,
				KeyID: e.KeyID, EndUser: e.EndUser, CachedPromptTokens: e.CachedPromptTokens, BatchID: e.BatchID})
		}
		if next == "" || len(page) == 0 {
			break
		}
		q.Cursor = next
	}
	if o.Limit > 0 && len(es) > o.Limit {
		es = es[:o.Limit]
	}
	return es, map[string]string{t.ID: t.Name}, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newLedgerEntriesCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	o := &ledgerEntriesOptions{db: db, rf: rf}
	cmd := &cobra.Command{
		Use:   "entries",
		Short: "List ledger entries, newest first (--reverse: oldest first)",
		Args:  cobra.NoArgs,
		RunE:  windowRunE(g, o),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Tenant, "tenant", "", "only this tenant (name or id)")
	fl.StringVar(&o.Since, "since", "", "only entries at or after: a duration back (24h), a date or an RFC 3339 time")
	fl.IntVar(&o.Limit, "limit", 0, "at most this many entries, the newest (0 = all)")
	fl.BoolVar(&o.Reverse, "reverse", false, "list oldest first (--limit still keeps the newest)")
	printer.Bind(cmd, &o.format, printer.Table, printer.JSON, printer.CSV)
	return cmd
}

// windowOptions are the ledger commands whose flags are read against now.
type windowOptions interface {
	Complete(now time.Time) error
	Validate() error
	Run(cmd *cobra.Command, g *globals) error
}

func windowRunE(g *globals, o windowOptions) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if err := o.Complete(time.Now()); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return o.Run(cmd, g)
	}
}

// ledgerSpendOptions is `llmctl ledger spend`: usage charged per tenant over
// a window, summed by the database (ledger.Store.Spend).
type ledgerSpendOptions struct {
	db    *dbFlag
	rf    *remoteFlags
	Since string
	Until string
	By    string // tenant (default), key, model, user or batch: see spend_by.go

	format       printer.Format
	since, until time.Time
}

// spendRow is one tenant's usage as printed, or one key's, model's or end
// user's of it with --by (the split's field is set, even when "").
type spendRow struct {
	TenantID    string  `json:"tenantId"`
	Tenant      string  `json:"tenant"`
	KeyID       *string `json:"keyId,omitempty"`
	Model       *string `json:"model,omitempty"`
	User        *string `json:"user,omitempty"`
	Batch       *string `json:"batchId,omitempty"`
	Spent       string  `json:"spent"`
	SpentMicros int64   `json:"spentMicros"`
	Requests    int64   `json:"requests"`
}

func (o *ledgerSpendOptions) Complete(now time.Time) (err error) {
	if o.since, o.until, err = parseWindow(o.Since, o.Until, now); err != nil {
		return err
	}
	return nil
}

func (o *ledgerSpendOptions) Validate() error {
	if o.until.Before(o.since) {
		return fmt.Errorf("--until (%s) is before --since (%s)", o.until.Format(time.RFC3339), o.since.Format(time.RFC3339))
	}
	return validateSpendBy(o.By)
}

func (o *ledgerSpendOptions) Run(cmd *cobra.Command, g *globals) error {
	ctx := cmd.Context()
	rc, err := o.rf.remote(o.db)
	if err != nil {
		return err
	}
	var rows []spendRow
	switch {
	case rc != nil && splitBy(o.By):
		rows, err = o.spendRemoteBy(ctx, rc)
	case rc != nil:
		rows, err = o.spendRemote(ctx, rc)
	default:
		rows, err = o.spendDB(ctx)
	}
	if err != nil {
		return err
	}
	switch o.format {
	case printer.JSON, printer.YAML:
		return printer.Structured(g.Out, o.format, rows)
	case printer.CSV:
		return writeSpendCSV(g.Out, o.By, rows)
	}
	return writeSpendTable(g.Out, o.By, rows)
}

func (o *ledgerSpendOptions) spendDB(ctx context.Context) ([]spendRow, error) {
	c, err := o.db.openLedger(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	names, err := c.names(ctx)
	if err != nil {
		return nil, err
	}
	sp, err := c.lg.Spend(ctx, ledger.SpendWindow{Since: o.since, Recent: o.since, Until: o.until,
		ByKey: o.By == "key", ByModel: o.By == "model", ByUser: o.By == "user", ByBatch: o.By == "batch"})
	if err != nil {
		return nil, err
	}
	rows := make([]spendRow, 0, len(sp))
	for _, x := range sp {
		r := spendRow{TenantID: x.TenantID, Tenant: names[x.TenantID], Spent: x.Amount.String(), SpentMicros: int64(x.Amount), Requests: x.Requests}
		r.split(o.By, x.KeyID, x.Model, x.EndUser, x.BatchID)
		rows = append(rows, r)
	}
	return rows, nil
}

// spendRemote asks the admin API tenant by tenant (it reports one tenant
// per call) and keeps those with spend, as the database's aggregate does.
func (o *ledgerSpendOptions) spendRemote(ctx context.Context, c *adminclient.Client) ([]spendRow, error) {
	ts, err := c.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]spendRow, 0, len(ts))
	for _, t := range ts {
		s, err := c.Spend(ctx, t.ID, o.since, o.until)
		if err != nil {
			return nil, err
		}
		if s.Requests == 0 && s.AmountMicros == 0 {
			continue
		}
		rows = append(rows, spendRow{TenantID: t.ID, Tenant: t.Name, Spent: s.Amount, SpentMicros: s.AmountMicros, Requests: s.Requests})
	}
	return rows, nil
}

func newLedgerSpendCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	o := &ledgerSpendOptions{db: db, rf: rf}
	cmd := &cobra.Command{
		Use:   "spend",
		Short: "Usage charged per tenant over a time window (debits and settled requests)",
		Example: `  llmctl ledger spend --since 720h
  llmctl ledger spend --by user --since 24h
  llmctl ledger spend --since 2026-11-01 --until 2026-12-01 -o csv`,
		Args: cobra.NoArgs,
		RunE: windowRunE(g, o),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Since, "since", "24h", "window start: a duration back (24h), a date or an RFC 3339 time")
	fl.StringVar(&o.Until, "until", "", "window end, same forms (default: now)")
	fl.StringVar(&o.By, "by", "tenant", "one row per: tenant, key (API key id), model, user (the requests' OpenAI user field) or batch (batch id, empty for interactive requests)")
	printer.Bind(cmd, &o.format, printer.Table, printer.JSON, printer.YAML, printer.CSV)
	return cmd
}

// ledgerCreditOptions is `llmctl ledger credit TENANT AMOUNT --reason`.
type ledgerCreditOptions struct {
	db     *dbFlag
	rf     *remoteFlags
	Tenant string
	Amount string
	Reason string
	Key    string

	amount ledger.Micros
	format printer.Format
}

func (o *ledgerCreditOptions) Complete(args []string) (err error) {
	o.Tenant, o.Amount = args[0], args[1]
	if o.amount, err = ledger.ParseMicros(o.Amount); err != nil {
		return err
	}
	if o.Key == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		o.Key = "adjust:" + hex.EncodeToString(b[:])
	}
	return nil
}

func (o *ledgerCreditOptions) Validate() error {
	if o.amount == 0 {
		return errors.New("AMOUNT must not be zero")
	}
	if strings.TrimSpace(o.Reason) == "" {
		return errors.New("--reason is required: every adjustment says why")
	}
	return nil
}

func (o *ledgerCreditOptions) Run(cmd *cobra.Command, g *globals) error {
	ctx := cmd.Context()
	rc, err := o.rf.remote(o.db)
	if err != nil {
		return err
	}
	if rc != nil {
		return o.runRemote(ctx, rc, g)
	}
	c, err := o.db.openLedger(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	t, err := c.st.GetTenant(ctx, o.Tenant)
	if err != nil {
		return fmt.Errorf("tenant %q: %w", o.Tenant, err)
	}
	e := ledger.Entry{Key: o.Key, TenantID: t.ID, Kind: ledger.KindAdjustment, Amount: o.amount, Reason: o.Reason, Time: time.Now().UTC()}
	n, err := c.lg.Apply(ctx, []ledger.Entry{e})
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(g.ErrOut, "adjustment %s was already applied; nothing changed\n", o.Key)
	}
	a, err := c.lg.Account(ctx, t.ID)
	if err != nil {
		return err
	}
	row := toBalanceRow(a, t.Name)
	o.warnBelowZero(g, row)
	if o.format != printer.Table {
		return printer.Structured(g.Out, o.format, row)
	}
	fmt.Fprintf(g.Out, "%s %s: balance %s (key %s)\n", t.Name, o.amount, row.Balance, o.Key)
	return nil
}

// warnBelowZero says on stderr when a debit left the tenant owing money:
// legal (an operator may mean it), but rarely what was meant.
func (o *ledgerCreditOptions) warnBelowZero(g *globals, row balanceRow) {
	if o.amount < 0 && row.BalanceMicros < 0 {
		fmt.Fprintf(g.ErrOut, "warning: %s's balance is now below zero (%s); its requests are refused until it is credited (or --overdraft allows it)\n",
			row.Tenant, row.Balance)
	}
}

// runRemote credits through the admin API (a positive amount is a credit, a
// negative one an adjustment there) and prints the balance after it, as
// --db does.
func (o *ledgerCreditOptions) runRemote(ctx context.Context, c *adminclient.Client, g *globals) error {
	// The exact decimal, as parsed here, so both paths accept the same AMOUNT.
	e, replayed, err := c.Credit(ctx, o.Tenant, o.amount.String(), o.Reason, o.Key)
	if err != nil {
		return err
	}
	if replayed {
		fmt.Fprintf(g.ErrOut, "adjustment %s was already applied; nothing changed\n", e.IdempotencyKey)
	}
	rows, err := balancesRemote(ctx, c, []string{o.Tenant})
	if err != nil {
		return err
	}
	o.warnBelowZero(g, rows[0])
	if o.format != printer.Table {
		return printer.Structured(g.Out, o.format, rows[0])
	}
	fmt.Fprintf(g.Out, "%s %s: balance %s (key %s)\n", rows[0].Tenant, o.amount, rows[0].Balance, e.IdempotencyKey)
	return nil
}

func newLedgerCreditCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	o := &ledgerCreditOptions{db: db, rf: rf}
	cmd := &cobra.Command{
		Use:   "credit TENANT AMOUNT",
		Short: "Add an adjustment entry (AMOUNT in currency units: 10, or -- -2.50 to debit)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// A negative AMOUNT needs "--" before it (else it reads as a
			// flag), which also makes every word after it an argument:
			// `credit T -- -2.50 --reason x` parses the words after the
			// amount as the flags they are.
			if len(args) > 2 {
				if err := cmd.Flags().Parse(args[2:]); err != nil {
					return usageError{msg: err.Error(), path: cmd.CommandPath()}
				}
				if rest := cmd.Flags().Args(); len(rest) > 0 {
					return usageError{msg: fmt.Sprintf("unexpected arguments after AMOUNT: %s", strings.Join(rest, " ")), path: cmd.CommandPath()}
				}
			}
			if err := o.Complete(args[:2]); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd, g)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Reason, "reason", "", "why (required; stored on the entry)")
	fl.StringVar(&o.Key, "idempotency-key", "", "key making a retried command apply once (default: random)")
	printer.Bind(cmd, &o.format)
	return cmd
}

// errDrift and errStaleHolds make `ledger verify` exit non-zero.
var (
	errDrift      = errors.New("ledger drift")
	errStaleHolds = errors.New("stale ledger holds")
)

// defaultMaxHoldAge is the longest a request can hold money: a remote
// backend's whole exchange is cut at 10 minutes (serve's TotalTimeout),
// plus slack for the settlement to reach the database. A hold older than
// that belongs to a request that is no longer running.
const defaultMaxHoldAge = 15 * time.Minute

// verifyReport is what `ledger verify -o json|yaml` prints.
type verifyReport struct {
	ledger.Report
	MaxHoldAge string            `json:"maxHoldAge"`
	StaleHolds []ledger.OpenHold `json:"staleHolds,omitempty"`
}

func newLedgerVerifyCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	var (
		format     printer.Format
		maxHoldAge time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Recompute every balance from the entries and look for stale holds; exit non-zero on any finding",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if maxHoldAge <= 0 || maxHoldAge >= ledger.DefaultHoldTTL {
				return fmt.Errorf("--max-hold-age %s: want more than 0 and less than the holds' expiry (%s)", maxHoldAge, ledger.DefaultHoldTTL)
			}
			ctx := cmd.Context()
			if rc, err := rf.remote(db); err != nil {
				return err
			} else if rc != nil {
				return notRemote("ledger verify")
			}
			c, err := db.openLedger(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			r, err := c.lg.Verify(ctx)
			if err != nil {
				return err
			}
			now := time.Now()
			stale, err := c.lg.Holds(ctx, now.Add(-maxHoldAge))
			if err != nil {
				return err
			}
			if format != printer.Table {
				if err := printer.Structured(g.Out, format, verifyReport{Report: r, MaxHoldAge: maxHoldAge.String(), StaleHolds: stale}); err != nil {
					return err
				}
			} else if err := printVerify(g, r, stale, maxHoldAge, now); err != nil {
				return err
			}
			if !r.OK() {
				return fmt.Errorf("%w: %d tenants drifted, %d entries with a wrong sign", errDrift, len(r.Drifts), r.BadSigns)
			}
			if len(stale) > 0 {
				return fmt.Errorf("%w: %d holds older than %s", errStaleHolds, len(stale), maxHoldAge)
			}
			return nil
		},
	}
	printer.Bind(cmd, &format)
	cmd.Flags().DurationVar(&maxHoldAge, "max-hold-age", defaultMaxHoldAge,
		"report holds older than this: longer than any request runs, shorter than their 1h expiry")
	return cmd
}

func printVerify(g *globals, r ledger.Report, stale []ledger.OpenHold, maxHoldAge time.Duration, now time.Time) error {
	fmt.Fprintf(g.Out, "%d tenants, %d entries, %d open holds\n", r.Tenants, r.Entries, r.Holds)
	if len(r.Drifts) > 0 {
		tw := printer.TableWriter(g.Out, "tenant", "balance", "sum of entries", "reserved", "sum of holds")
		for _, d := range r.Drifts {
			tw.Row(d.TenantID, d.Balance.String(), d.EntrySum.String(), d.Reserved.String(), d.HoldSum.String())
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if r.BadSigns > 0 {
		fmt.Fprintf(g.Out, "%d entries break their kind's sign rule\n", r.BadSigns)
	}
	if len(stale) > 0 {
		fmt.Fprintf(g.Out, "%d holds older than %s: no request runs that long (a gateway died without its spool, or a settlement is still spooled during a database outage)\n",
			len(stale), maxHoldAge)
		tw := printer.TableWriter(g.Out, "hold", "tenant", "amount", "age")
		for _, h := range stale {
			tw.Row(h.Key, h.TenantID, h.Amount.String(), now.Sub(h.Created).Round(time.Second).String())
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if r.OK() {
		fmt.Fprintln(g.Out, "ok: every balance equals the sum of its entries")
	}
	return nil
}

// parseWindow reads --since and --until (empty: now) as the spend and
// margin reports take them.
func parseWindow(since, until string, now time.Time) (from, to time.Time, err error) {
	if from, err = parseSince(since, now); err != nil {
		return from, to, err
	}
	to = now
	if until != "" {
		if to, err = parseSince(until, now); err != nil {
			return from, to, fmt.Errorf("--until: %w", err)
		}
	}
	return from, to, nil
}
