package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

// auditOptions is `llmctl audit`: the audit log, newest first.
type auditOptions struct {
	db     *dbFlag
	rf     *remoteFlags
	Since  string
	Until  string
	Limit  int
	Before int64

	format printer.Format
	filter store.AuditFilter
	now    func() time.Time
}

func (o *auditOptions) Complete(_ []string) (err error) {
	now := o.now()
	if o.Since != "" {
		if o.filter.Since, err = parseSince(o.Since, now); err != nil {
			return err
		}
	}
	if o.Until != "" {
		if o.filter.Until, err = parseSince(o.Until, now); err != nil {
			return fmt.Errorf("--until %q: want a duration back from now (1h), a date (2026-01-02) or an RFC 3339 time", o.Until)
		}
	}
	o.filter.Limit, o.filter.Before = o.Limit, o.Before
	return nil
}

func (o *auditOptions) Validate() error {
	if o.Limit < 1 || o.Limit > store.MaxAuditLimit {
		return fmt.Errorf("--limit %d: want 1 to %d", o.Limit, store.MaxAuditLimit)
	}
	if o.Before < 0 {
		return fmt.Errorf("--before %d: want the id of a record (the last one of the previous page)", o.Before)
	}
	f := o.filter
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return fmt.Errorf("--since must be before --until")
	}
	return nil
}

func (o *auditOptions) Run(cmd *cobra.Command, g *globals) error {
	recs, err := o.list(cmd.Context())
	if err != nil {
		return err
	}
	if o.format != printer.Table {
		return printer.Structured(g.Out, o.format, recs)
	}
	tw := printer.TableWriter(g.Out, "id", "time", "actor", "action", "target", "request-id", "details")
	for _, r := range recs {
		tw.Row(strconv.FormatInt(r.ID, 10), r.Time.Format(time.RFC3339), r.Actor, r.Action, dash(r.Target),
			dash(r.RequestID), string(r.Details))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(recs) == o.Limit {
		// A full page: there may be older records; say how to get them.
		fmt.Fprintf(g.ErrOut, "older records: llmctl audit --limit %d --before %d\n", o.Limit, recs[len(recs)-1].ID)
	}
	return nil
}

// list reads the page from --server's admin API or from --db.
func (o *auditOptions) list(ctx context.Context) ([]store.AuditRecord, error) {
	c, err := o.rf.remote(o.db)
	if err != nil {
		return nil, err
	}
	if c != nil {
		recs, _, err := c.Audit(ctx, adminclient.AuditQuery{Since: o.filter.Since, Until: o.filter.Until, Limit: o.filter.Limit, Before: o.filter.Before})
		if err != nil {
			return nil, err
		}
		return auditFromAPI(recs), nil
	}
	st, err := o.db.open(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.ListAudit(ctx, o.filter)
}

func newAuditCmd(g *globals) *cobra.Command {
	o := &auditOptions{db: &dbFlag{g: g}, rf: &remoteFlags{}, now: time.Now}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List the audit log of admin writes (who, what, when), newest first",
		Args:  cobra.NoArgs,
		RunE:  runOptions(g, o),
	}
	o.db.bind(cmd)
	o.rf.bind(cmd)
	f := cmd.Flags()
	f.StringVar(&o.Since, "since", "", "only records from this time: a duration back (24h), a date or an RFC 3339 time")
	f.StringVar(&o.Until, "until", "", "only records before this time: a duration back (1h), a date or an RFC 3339 time")
	f.IntVar(&o.Limit, "limit", 50, fmt.Sprintf("at most this many records (1 to %d)", store.MaxAuditLimit))
	f.Int64Var(&o.Before, "before", 0, "only records with a smaller id: the last id of the previous page")
	printer.Bind(cmd, &o.format)
	return cmd
}
