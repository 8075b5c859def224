// Package ledgersource adapts the billing stores (tenants from
// pkg/billing/store, balances and entries from pkg/billing/ledger) to the
// top.LedgerSource the ledger pane reads.
package ledgersource

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/top"
)

// Tenants is the part of store.Store used here.
type Tenants interface {
	ListTenants(ctx context.Context) ([]store.Tenant, error)
}

// Ledger is the part of ledger.Store used here.
type Ledger interface {
	Accounts(ctx context.Context) ([]ledger.Account, error)
	Entries(ctx context.Context, f ledger.Filter) ([]ledger.Entry, error)
	Spend(ctx context.Context, w ledger.SpendWindow) ([]ledger.Spend, error)
}

// Source reads both.
type Source struct {
	Store  Tenants
	Ledger Ledger
}

var _ top.LedgerSource = (*Source)(nil)

// Open opens the tenant store and the ledger on dsn (as `llmctl ledger
// --db` does), on one database handle. Close releases it.
func Open(ctx context.Context, dsn string) (*Source, func() error, error) {
	db, err := store.OpenDB(ctx, dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("open ledger database: %w", err)
	}
	return &Source{Store: db.Store(), Ledger: ledger.OnDB(db)}, db.Close, nil
}

// Tenants lists every tenant (those with ledger activity but no tenant
// record too, by id) with balance, and spend and requests over the last
// hour and day. A request is a debit or a release: each settles one.
func (s *Source) Tenants(ctx context.Context, now time.Time) ([]top.TenantRow, error) {
	ts, err := s.Store.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	accts, err := s.Ledger.Accounts(ctx)
	if err != nil {
		return nil, err
	}
	// The day's spend is summed by the database: one row per tenant per
	// refresh, however many entries the day holds.
	spend, err := s.Ledger.Spend(ctx, ledger.SpendWindow{Since: now.Add(-24 * time.Hour), Recent: now.Add(-time.Hour), Until: now})
	if err != nil {
		return nil, err
	}
	rows := map[string]*top.TenantRow{}
	var order []string
	row := func(id string) *top.TenantRow {
		r := rows[id]
		if r == nil {
			r = &top.TenantRow{ID: id, Name: id}
			rows[id] = r
			order = append(order, id)
		}
		return r
	}
	for _, t := range ts {
		row(t.ID).Name = t.Name
	}
	for _, a := range accts {
		row(a.TenantID).Balance = int64(a.Balance)
	}
	for _, sp := range spend {
		r := row(sp.TenantID)
		r.Spend24h, r.Requests24h = int64(sp.Amount), sp.Requests
		r.Spend1h, r.Requests1h = int64(sp.RecentAmount), sp.RecentRequests
	}
	out := make([]top.TenantRow, 0, len(order))
	for _, id := range order {
		out = append(out, *rows[id])
	}
	return out, nil
}

// Entries returns a tenant's newest entries, newest first. The ledger lists
// oldest first, so this reads the last day and, when that holds fewer than
// limit, the tenant's whole history.
func (s *Source) Entries(ctx context.Context, tenantID string, limit int) ([]top.Entry, error) {
	es, err := s.Ledger.Entries(ctx, ledger.Filter{TenantID: tenantID, Since: time.Now().Add(-24 * time.Hour)})
	if err != nil {
		return nil, err
	}
	if len(es) < limit {
		if es, err = s.Ledger.Entries(ctx, ledger.Filter{TenantID: tenantID}); err != nil {
			return nil, err
		}
	}
	// Newest first by time; seq (write order) breaks ties. Spool replays
	// can write an old entry late, so seq alone is not time order.
	sort.SliceStable(es, func(i, j int) bool { return es[i].Time.After(es[j].Time) })
	out := make([]top.Entry, 0, min(len(es), limit))
	for _, e := range es[:min(len(es), limit)] {
		out = append(out, top.Entry{
			Time: e.Time, Kind: string(e.Kind), Amount: int64(e.Amount), Model: e.Model,
			PromptTokens: e.PromptTokens, CompletionTokens: e.CompletionTokens, Reason: e.Reason,
		})
	}
	return out, nil
}
