package serve

// GET /v1/models and GET /v1/me: what a key may use and what it has spent.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve/admin"
)

// models lists (or, with id, shows) the models the key may use.
func (g *Gateway) models(w http.ResponseWriter, r *http.Request, st *reqState, id string) {
	p, aerr := g.authenticate(r, st)
	if aerr != nil {
		g.fail(w, st, aerr)
		return
	}
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	all := g.router.models()
	var list []model
	for name, owners := range all {
		resolved, _ := g.router.resolve(name)
		if !p.Allows(name) && !p.Allows(resolved) {
			continue
		}
		list = append(list, model{ID: name, Object: "model", OwnedBy: strings.Join(owners, ",")})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	w.Header().Set("Content-Type", "application/json")
	if id != "" {
		for _, m := range list {
			if m.ID == id {
				_ = json.NewEncoder(w).Encode(m)
				return
			}
		}
		g.fail(w, st, &apiError{Status: http.StatusNotFound, Type: typeNotFound, Code: "model_not_found",
			Message: fmt.Sprintf("the model %q does not exist", id)})
		return
	}
	if list == nil {
		list = []model{}
	}
	_ = json.NewEncoder(w).Encode(struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{"list", list})
}

// me is GET /v1/me: what the caller's key is and may do, and, with a
// ledger, its tenant's balance and spend. Authenticated like /v1/models and,
// like it, not counted by the rate limiter: asking about the quota must
// work while the quota is spent.
func (g *Gateway) me(w http.ResponseWriter, r *http.Request, st *reqState) {
	p, aerr := g.authenticate(r, st)
	if aerr != nil {
		g.fail(w, st, aerr)
		return
	}
	type limitsJSON struct {
		RPM            int64 `json:"rpm"`
		TPM            int64 `json:"tpm"`
		MaxConcurrency int64 `json:"max_concurrency"`
		BatchRPM       int64 `json:"batch_rpm"`
		BatchTPM       int64 `json:"batch_tpm"`
	}
	type spendJSON struct {
		Amount       string `json:"amount"`
		AmountMicros int64  `json:"amount_micros"`
		Requests     int64  `json:"requests"`
	}
	type billingJSON struct {
		admin.BalanceJSON
		Spend24h spendJSON `json:"spend_24h"`
		Spend30d spendJSON `json:"spend_30d"`
		// The part of the spend above that batch lines were charged.
		BatchSpend24h spendJSON `json:"batch_spend_24h"`
		BatchSpend30d spendJSON `json:"batch_spend_30d"`
		// The tenant's own budgets and the calling key's.
		Budgets []admin.BudgetJSON `json:"budgets"`
	}
	lim := func(l billing.Limits) limitsJSON {
		return limitsJSON{l.RPM, l.TPM, l.MaxConcurrency, l.BatchRPM, l.BatchTPM}
	}
	models := p.Models
	if models == nil {
		models = []string{}
	}
	out := struct {
		Object    string     `json:"object"`
		Tenant    string     `json:"tenant"`
		TenantID  string     `json:"tenant_id"`
		KeyID     string     `json:"key_id"`
		Role      string     `json:"role"`
		Models    []string   `json:"models"`
		ExpiresAt *time.Time `json:"expires_at"`
		// 0 = no limit of this kind stored on the key or tenant.
		Limits struct {
			Key    limitsJSON `json:"key"`
			Tenant limitsJSON `json:"tenant"`
		} `json:"limits"`
		Billing        *billingJSON `json:"billing"`
		BillingMessage string       `json:"billing_message,omitempty"`
	}{Object: "me", Tenant: p.TenantName, TenantID: p.TenantID, KeyID: p.KeyID, Role: string(p.Role),
		Models: models, ExpiresAt: p.ExpiresAt}
	if out.Role == "" {
		out.Role = string(billing.RoleUser)
	}
	out.Limits.Key, out.Limits.Tenant = lim(p.KeyLimits), lim(p.TenantLimits)
	if g.opts.Ledger == nil {
		out.BillingMessage = admin.BillingDisabled
	} else {
		a, err := g.opts.Ledger.Account(r.Context(), p.TenantID)
		var spend []ledger.Spend
		if err == nil {
			// One aggregate over this tenant's entries: the 30-day window,
			// of which the last 24 h is the recent part.
			now := time.Now()
			spend, err = g.opts.Ledger.Spend(r.Context(), ledger.SpendWindow{Since: now.Add(-30 * 24 * time.Hour), Recent: now.Add(-24 * time.Hour), Until: now, TenantID: p.TenantID, ByBatch: true})
		}
		var budgets []admin.BudgetJSON
		if err == nil {
			budgets, err = g.meBudgets(r.Context(), p)
		}
		if err != nil {
			if r.Context().Err() != nil {
				g.fail(w, st, clientClosed())
				return
			}
			g.log.Error("me: ledger", "request_id", st.id, "err", err)
			g.fail(w, st, &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "ledger_unavailable",
				Message: "the ledger could not be read; try again"})
			return
		}
		b := &billingJSON{BalanceJSON: admin.BalanceOut(a), Budgets: budgets}
		// One row per batch ("" for interactive requests): summed, and
		// the batches' part apart.
		var all, batches ledger.Spend
		for _, s := range spend {
			if s.TenantID != p.TenantID {
				continue
			}
			all.Add(s)
			if s.BatchID != "" {
				batches.Add(s)
			}
		}
		sj := func(s ledger.Micros, n int64) spendJSON { return spendJSON{s.String(), int64(s), n} }
		b.Spend24h, b.Spend30d = sj(all.RecentAmount, all.RecentRequests), sj(all.Amount, all.Requests)
		b.BatchSpend24h, b.BatchSpend30d = sj(batches.RecentAmount, batches.RecentRequests), sj(batches.Amount, batches.Requests)
		out.Billing = b
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
