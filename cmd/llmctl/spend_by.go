package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

// `llmctl ledger spend --by tenant|key|model|user|batch`: the splits of
// ledger.SpendWindow (ByKey, ByModel, ByUser, ByBatch), by the database or the admin
// API's spend?by=.

func validateSpendBy(by string) error {
	switch by {
	case "", "tenant", "key", "model", "user", "batch":
		return nil
	}
	return fmt.Errorf("--by %q: want tenant, key, model, user or batch", by)
}

// splitBy reports whether by splits a tenant's row.
func splitBy(by string) bool { return by != "" && by != "tenant" }

// split sets the field by names.
func (r *spendRow) split(by, keyID, model, user, batchID string) {
	switch by {
	case "key":
		r.KeyID = &keyID
	case "model":
		r.Model = &model
	case "user":
		r.User = &user
	case "batch":
		r.Batch = &batchID
	}
}

// column is the value of the split's column.
func (r spendRow) column() string {
	for _, p := range []*string{r.KeyID, r.Model, r.User, r.Batch} {
		if p != nil {
			return *p
		}
	}
	return ""
}

// spendRemoteBy asks the admin API for each tenant's split and keeps the
// rows with spend, as the database's aggregate does.
func (o *ledgerSpendOptions) spendRemoteBy(ctx context.Context, c *adminclient.Client) ([]spendRow, error) {
	ts, err := c.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	var rows []spendRow
	for _, t := range ts {
		s, err := c.SpendBy(ctx, t.ID, o.since, o.until, o.By)
		if err != nil {
			return nil, err
		}
		for _, d := range s.Data {
			if d.Requests == 0 && d.AmountMicros == 0 {
				continue
			}
			r := spendRow{TenantID: t.ID, Tenant: t.Name, Spent: d.Amount, SpentMicros: d.AmountMicros, Requests: d.Requests,
				KeyID: d.KeyID, Model: d.Model, User: d.User, Batch: d.Batch}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

func writeSpendCSV(w io.Writer, by string, rows []spendRow) error {
	cw := csv.NewWriter(w)
	head := []string{"tenant_id", "tenant"}
	if splitBy(by) {
		head = append(head, by)
	}
	_ = cw.Write(append(head, "spent_micros", "spent", "requests"))
	for _, r := range rows {
		rec := []string{r.TenantID, r.Tenant}
		if splitBy(by) {
			rec = append(rec, r.column())
		}
		_ = cw.Write(append(rec, strconv.FormatInt(r.SpentMicros, 10), r.Spent, strconv.FormatInt(r.Requests, 10)))
	}
	cw.Flush()
	return cw.Error()
}

func writeSpendTable(w io.Writer, by string, rows []spendRow) error {
	head := []string{"tenant", "id"}
	if splitBy(by) {
		head = append(head, by)
	}
	tw := printer.TableWriter(w, append(head, "spent", "requests")...)
	for _, r := range rows {
		rec := []string{dash(r.Tenant), r.TenantID}
		if splitBy(by) {
			rec = append(rec, dash(r.column()))
		}
		tw.Row(append(rec, r.Spent, strconv.FormatInt(r.Requests, 10))...)
	}
	return tw.Flush()
}
