package admin

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// Page sizes of GET .../entries.
const (
	DefaultEntriesLimit = 100
	MaxEntriesLimit     = 1000
)

// onlyParams refuses a query parameter the endpoint does not know, so a
// typo (say, "untill") is an error rather than a silently wider answer.
func onlyParams(q url.Values, allowed ...string) *apiError {
	for k := range q {
		if !slices.Contains(allowed, k) {
			return badRequest(k, "unknown query parameter %q; use %s", k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// window reads since and until: each an RFC 3339 time, or a Go duration
// such as 24h or 30m meaning that long before now. Both are inclusive.
func window(q url.Values, now time.Time) (since, until time.Time, e *apiError) {
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &since}, {"until", &until}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		if ts, err := time.Parse(time.RFC3339Nano, v); err == nil {
			*p.dst = ts
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return since, until, badRequest(p.name, "%q must be an RFC 3339 time such as 2026-01-02T15:04:05Z or a duration before now such as 24h (got %q)", p.name, v)
		}
		*p.dst = now.Add(-d)
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return since, until, badRequest("until", "%q must be after %q", "until", "since")
	}
	return since, until, nil
}

// page reads limit (default def, at most max) and cursor (the next_cursor
// of a previous page: an id or sequence number to continue below).
func page(q url.Values, def, max int) (limit int, cursor int64, e *apiError) {
	limit = def
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > max {
			return 0, 0, badRequest("limit", "%q must be a whole number from 1 to %d (got %q)", "limit", max, v)
		}
		limit = n
	}
	if v := q.Get("cursor"); v != "" {
		c, err := strconv.ParseInt(v, 10, 64)
		if err != nil || c < 1 {
			return 0, 0, badRequest("cursor", "%q must be the next_cursor of a previous page (got %q)", "cursor", v)
		}
		cursor = c
	}
	return limit, cursor, nil
}

// entryList is a page of entries; NextCursor is absent on the last page.
type entryList struct {
	Object     string      `json:"object"`
	Data       []entryJSON `json:"data"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// entryKey is the idempotency key a client may know: the one it sent with
// a credit. The gateway's own keys (charges, payments) are internal.
func entryKey(tenantID, key string) string {
	k, ok := strings.CutPrefix(key, creditKey(tenantID, ""))
	if !ok {
		return ""
	}
	return k
}

// listEntries is GET /admin/v1/tenants/{name}/entries: newest first, a page
// at a time. The cursor is the sequence number of the page's last entry, so
// entries written while a client pages through never shift its pages.
func (h *Handler) listEntries(r *http.Request, _ []byte) (int, any, *apiError) {
	if h.ledger == nil {
		return 0, nil, billingDisabled()
	}
	q := r.URL.Query()
	if e := onlyParams(q, "since", "until", "limit", "cursor"); e != nil {
		return 0, nil, e
	}
	since, until, e := window(q, h.now())
	if e != nil {
		return 0, nil, e
	}
	f := ledger.Filter{Since: since, Until: until, NewestFirst: true}
	if f.Limit, f.BeforeSeq, e = page(q, DefaultEntriesLimit, MaxEntriesLimit); e != nil {
		return 0, nil, e
	}
	name := r.PathValue("name")
	t, err := h.st.GetTenant(r.Context(), name)
	if err != nil {
		return 0, nil, h.storeError(r, tenantWhat(name), err)
	}
	f.TenantID = t.ID
	es, err := h.ledger.Entries(r.Context(), f)
	if err != nil {
		return 0, nil, h.ledgerError(r, err)
	}
	out := entryList{Object: "list", Data: make([]entryJSON, 0, len(es))}
	for _, e := range es {
		out.Data = append(out.Data, entryOut(e, t.Name, entryKey(t.ID, e.Key)))
	}
	// A full page may have a next one; the client learns it is the last
	// when the next page is empty, which costs one request at most.
	if len(es) == f.Limit {
		out.NextCursor = strconv.FormatInt(es[len(es)-1].Seq, 10)
	}
	return http.StatusOK, out, nil
}

// spendJSON is an amount spent: decimal currency units and micro-units.
type spendJSON struct {
	Amount       string `json:"amount"`
	AmountMicros int64  `json:"amount_micros"`
	Requests     int64  `json:"requests"`
}

type spendReport struct {
	Object string     `json:"object"`
	Tenant string     `json:"tenant"`
	Since  *time.Time `json:"since"` // null: since the first entry
	Until  time.Time  `json:"until"`
	spendJSON
	By string `json:"by,omitempty"`
	// by=model: one per model, "" for entries without one; by=key: one per
	// API key id, "" for entries that record none; by=user: one per end
	// user (the requests' OpenAI user field), "" for requests without one.
	Data []splitSpendJSON `json:"data,omitzero"`
}

// splitSpendJSON is one row of a split: Model is set by=model, KeyID by=key,
// User by=user.
type splitSpendJSON struct {
	Model *string `json:"model,omitempty"`
	KeyID *string `json:"key_id,omitempty"`
	User  *string `json:"user,omitempty"`
	// Batch is the batch id of by=batch ("" for interactive requests).
	Batch *string `json:"batch_id,omitempty"`
	spendJSON
}

// getSpend is GET /admin/v1/tenants/{name}/spend: what the tenant's
// requests were charged (debits; releases count as requests), summed in
// the database. Credits and adjustments are not spend.
func (h *Handler) getSpend(r *http.Request, _ []byte) (int, any, *apiError) {
	if h.ledger == nil {
		return 0, nil, billingDisabled()
	}
	q := r.URL.Query()
	if e := onlyParams(q, "since", "until", "by"); e != nil {
		return 0, nil, e
	}
	now := h.now()
	since, until, e := window(q, now)
	if e != nil {
		return 0, nil, e
	}
	if until.IsZero() {
		until = now
		if !since.IsZero() && !since.Before(until) {
			return 0, nil, badRequest("since", "%q must be before now", "since")
		}
	}
	by := q.Get("by")
	switch by {
	case "", "model", "key", "user", "batch":
	default:
		return 0, nil, badRequest("by", "%q must be model, key, user or batch (got %q)", "by", by)
	}
	name := r.PathValue("name")
	t, err := h.st.GetTenant(r.Context(), name)
	if err != nil {
		return 0, nil, h.storeError(r, tenantWhat(name), err)
	}
	rows, err := h.ledger.Spend(r.Context(), ledger.SpendWindow{Since: since, Recent: until, Until: until,
		TenantID: t.ID, ByModel: by == "model", ByKey: by == "key", ByUser: by == "user", ByBatch: by == "batch"})
	if err != nil {
		return 0, nil, h.ledgerError(r, err)
	}
	out := spendReport{Object: "spend", Tenant: t.Name, Until: until.UTC(), By: by}
	if !since.IsZero() {
		s := since.UTC()
		out.Since = &s
	}
	var total ledger.Micros
	var requests int64
	for _, s := range rows {
		total += s.Amount
		requests += s.Requests
		row := splitSpendJSON{spendJSON: spendJSON{Amount: s.Amount.String(), AmountMicros: int64(s.Amount), Requests: s.Requests}}
		switch by {
		case "model":
			row.Model = &s.Model
		case "key":
			row.KeyID = &s.KeyID
		case "user":
			row.User = &s.EndUser
		case "batch":
			row.Batch = &s.BatchID
		default:
			continue
		}
		out.Data = append(out.Data, row)
	}
	if by != "" && out.Data == nil {
		out.Data = []splitSpendJSON{}
	}
	out.spendJSON = spendJSON{Amount: total.String(), AmountMicros: int64(total), Requests: requests}
	return http.StatusOK, out, nil
}
