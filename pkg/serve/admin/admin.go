// Package admin is the HTTP admin API under /admin/v1/: tenants, API keys,
// credits, balances, ledger entries and spend, the audit log and an OpenAPI
// 3.1 document, as JSON with OpenAI-shaped errors (docs/admin-api.md).
//
// The Handler trusts the gateway for who is calling: the gateway
// authenticates the bearer key, refuses non-admin keys and rate-limits the
// request, then passes the caller in the context (WithCaller). A request
// without a caller is refused, so the handler is never open by mistake.
// Every write appends an audit record naming the caller's key id.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// Prefix is where the API is mounted.
const Prefix = "/admin/v1/"

// Store is what the admin API needs from the tenants-and-keys store
// (store.Store satisfies it).
type Store interface {
	CreateTenant(ctx context.Context, name string, limits billing.Limits) (store.Tenant, error)
	GetTenant(ctx context.Context, nameOrID string) (store.Tenant, error)
	ListTenants(ctx context.Context) ([]store.Tenant, error)
	SetTenantLimits(ctx context.Context, nameOrID string, l billing.Limits) (store.Tenant, error)
	SuspendTenant(ctx context.Context, nameOrID string) (store.Tenant, error)
	ResumeTenant(ctx context.Context, nameOrID string) (store.Tenant, error)
	CreateKey(ctx context.Context, k store.NewKey) (store.Key, string, error)
	GetKey(ctx context.Context, id string) (store.Key, error)
	ListKeys(ctx context.Context, tenant string) ([]store.Key, error)
	RevokeKey(ctx context.Context, id string) error
	UpdateKey(ctx context.Context, id string, u store.KeyUpdate) (store.Key, error)
	AppendAudit(ctx context.Context, r store.AuditRecord) (store.AuditRecord, error)
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error)
}

// Options configure New.
type Options struct {
	Store  Store
	Logger *slog.Logger
	// MaxBodyBytes limits a request body (413 above); default 1 MiB. The
	// gateway has already applied its own limit before the handler runs.
	MaxBodyBytes int64
	// Now is the clock for key expiry; default time.Now.
	Now func() time.Time
	// Ledger serves credits and balances; nil (serve without --prices)
	// answers those endpoints 501 billing_disabled.
	Ledger Ledger
	// Vouchers serves /admin/v1/vouchers (vouchers.go); nil answers 501.
	Vouchers Vouchers
	// Alerts is the ledger's outbox (alerts.go); nil answers 501.
	Alerts Outbox
	// Prices is the ledger's price list (prices.go); nil answers 501.
	Prices *ledger.Prices
}

// Handler serves the admin API.
type Handler struct {
	st      Store
	log     *slog.Logger
	maxBody int64
	now     func() time.Time
	ledger  Ledger
	vouch   Vouchers
	alerts  Outbox
	prices  *ledger.Prices
	mux     *http.ServeMux
	openapi json.RawMessage // the OpenAPI document, as served
}

type callerKey struct{}

// WithCaller returns ctx carrying the authenticated admin principal.
func WithCaller(ctx context.Context, p billing.Principal) context.Context {
	return context.WithValue(ctx, callerKey{}, p)
}

func callerOf(ctx context.Context) (billing.Principal, bool) {
	p, ok := ctx.Value(callerKey{}).(billing.Principal)
	return p, ok && p.KeyID != ""
}

// New builds the handler.
func New(o Options) (*Handler, error) {
	if o.Store == nil {
		return nil, errors.New("admin: a Store is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	doc, err := openAPIJSON()
	if err != nil {
		return nil, err
	}
	h := &Handler{st: o.Store, log: o.Logger, maxBody: o.MaxBodyBytes, now: o.Now, ledger: o.Ledger, vouch: o.Vouchers, mux: http.NewServeMux(), openapi: doc}
	h.alerts, h.prices = o.Alerts, o.Prices
	h.routes()
	return h, nil
}

// handlerFunc answers with a value to encode (and its status) or an error.
type handlerFunc func(r *http.Request, body []byte) (int, any, *apiError)

// route is one path pattern and the handler of each method it answers.
type route struct {
	path    string
	methods map[string]handlerFunc
}

// table is the one list of the API's routes: routes registers it, and
// Routes reports it to the test that holds the OpenAPI document to it.
func (h *Handler) table() []route {
	return []route{
		{"/admin/v1/tenants", map[string]handlerFunc{"GET": h.listTenants, "POST": h.createTenant}},
		{"/admin/v1/tenants/{name}", map[string]handlerFunc{"GET": h.getTenant, "PATCH": h.patchTenant, "DELETE": h.suspendTenant}},
		{"/admin/v1/tenants/{name}/resume", map[string]handlerFunc{"POST": bodiless(h.resumeTenant)}},
		{"/admin/v1/tenants/{name}/keys", map[string]handlerFunc{"GET": h.listKeys, "POST": h.createKey}},
		{"/admin/v1/tenants/{name}/credits", map[string]handlerFunc{"POST": h.createCredit}},
		{"/admin/v1/tenants/{name}/balance", map[string]handlerFunc{"GET": h.getBalance}},
		{"/admin/v1/tenants/{name}/entries", map[string]handlerFunc{"GET": h.listEntries}},
		{"/admin/v1/tenants/{name}/spend", map[string]handlerFunc{"GET": h.getSpend}},
		{"/admin/v1/tenants/{name}/budgets", map[string]handlerFunc{"GET": h.listBudgets, "PUT": h.putBudget, "DELETE": h.deleteBudgets}},
		{"/admin/v1/keys/{id}", map[string]handlerFunc{"GET": h.getKey, "PATCH": h.patchKey, "DELETE": h.revokeKey}},
		{"/admin/v1/vouchers", map[string]handlerFunc{"GET": h.listVouchers, "POST": h.createVouchers}},
		{"/admin/v1/vouchers/{id}/revoke", map[string]handlerFunc{"POST": bodiless(h.revokeVoucher)}},
		{"/admin/v1/keys/{id}/budgets", map[string]handlerFunc{"GET": h.listBudgets, "PUT": h.putBudget, "DELETE": h.deleteBudgets}},
		{"/admin/v1/audit", map[string]handlerFunc{"GET": h.listAudit}},
		{"/admin/v1/tenants/{name}/alerts", map[string]handlerFunc{"GET": h.getTenantAlerts, "PUT": h.putTenantAlerts}},
		{"/admin/v1/alerts/deliveries", map[string]handlerFunc{"GET": h.listDeliveries}},
		{"/admin/v1/alerts/deliveries/{id}/redeliver", map[string]handlerFunc{"POST": bodiless(h.redeliver)}},
		{"/admin/v1/prices", map[string]handlerFunc{"GET": h.listPrices}},
		{"/admin/v1/openapi.json", map[string]handlerFunc{"GET": h.getOpenAPI}},
	}
}

// Route is a path pattern of the API (ServeMux syntax) and its methods.
type Route struct {
	Path    string
	Methods []string // sorted
}

// Routes lists every route the handler serves.
func (h *Handler) Routes() []Route {
	var out []Route
	for _, rt := range h.table() {
		ms := make([]string, 0, len(rt.methods))
		for m := range rt.methods {
			ms = append(ms, m)
		}
		slices.Sort(ms)
		out = append(out, Route{Path: rt.path, Methods: ms})
	}
	return out
}

func (h *Handler) routes() {
	for _, rt := range h.table() {
		allow := make([]string, 0, len(rt.methods))
		for m, f := range rt.methods {
			allow = append(allow, m)
			h.mux.Handle(m+" "+rt.path, h.serve(f))
		}
		slices.Sort(allow)
		// The method-less pattern is less specific than every "METHOD path",
		// so it only sees the methods the path does not have: a 405 in
		// OpenAI's shape instead of ServeMux's plain-text one.
		h.mux.HandleFunc(rt.path, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Type: typeInvalidRequest, Code: "method_not_allowed",
				Message: fmt.Sprintf("method %s not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, ", ")),
				Header:  http.Header{"Allow": {strings.Join(allow, ", ")}}})
		})
	}
	h.mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: typeInvalidRequest, Code: "unknown_url",
			Message: fmt.Sprintf("unknown URL: %s %s", r.Method, r.URL.Path)})
	})
}

// ServeHTTP refuses a request without an admin caller, then routes it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := callerOf(r.Context())
	if !ok {
		writeError(w, &apiError{Status: http.StatusUnauthorized, Type: typeAuthentication, Code: "invalid_api_key",
			Message: "missing API key: send Authorization: Bearer sk-llm-..."})
		return
	}
	if !p.IsAdmin() {
		writeError(w, &apiError{Status: http.StatusForbidden, Type: typePermission, Code: "permission_denied",
			Message: "this API key may not use the admin API; use an admin key"})
		return
	}
	h.mux.ServeHTTP(w, r)
}

// serve reads the (bounded) body and writes f's answer.
func (h *Handler) serve(f handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, &apiError{Status: http.StatusRequestEntityTooLarge, Type: typeInvalidRequest,
					Code: "request_too_large", Message: fmt.Sprintf("request body exceeds %d bytes", mbe.Limit),
					Header: http.Header{"Connection": {"close"}}})
				return
			}
			writeError(w, badRequest("", "could not read the request body: %v", err))
			return
		}
		if r.Method == http.MethodGet || r.Method == http.MethodDelete {
			f = bodiless(f)
		}
		status, v, e := f(r, body)
		if e != nil {
			writeError(w, e)
			return
		}
		writeJSON(w, status, v)
	})
}

// bodiless refuses a body on a route that takes none, so a client that
// sends one by mistake (say, limits on DELETE) is told instead of ignored.
func bodiless(f handlerFunc) handlerFunc {
	return func(r *http.Request, body []byte) (int, any, *apiError) {
		if len(strings.TrimSpace(string(body))) > 0 {
			return 0, nil, badRequest("", "this request takes no body")
		}
		return f(r, body)
	}
}

// storeError maps a store error to an answer; what names what was looked up.
func (h *Handler) storeError(r *http.Request, what string, err error) *apiError {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("%s not found", what)
	case errors.Is(err, store.ErrConflict):
		return &apiError{Status: http.StatusConflict, Type: typeInvalidRequest, Code: "conflict",
			Message: fmt.Sprintf("%s already exists", what)}
	case r.Context().Err() != nil:
		return &apiError{Status: 499, Type: typeServer, Code: "client_closed", Message: "client closed the request"}
	}
	h.log.ErrorContext(r.Context(), "admin api: store", "request_id", r.Header.Get("X-Request-Id"), "err", err)
	return internal()
}

// audit appends the record of a write that has been made. A failure is
// logged, not answered: the write cannot be undone, and for a new key the
// answer carries the only copy of the secret.
func (h *Handler) audit(r *http.Request, action, target string, details any) {
	p, _ := callerOf(r.Context())
	rec := store.AuditRecord{Actor: p.KeyID, Action: action, Target: target, RequestID: r.Header.Get("X-Request-Id")}
	if details != nil {
		b, err := json.Marshal(details)
		if err == nil {
			rec.Details = b
		}
	}
	// Not cancelled with the client: the write it records has happened.
	ctx := context.WithoutCancel(r.Context())
	if _, err := h.st.AppendAudit(ctx, rec); err != nil {
		h.log.ErrorContext(ctx, "admin api: audit record not written", "request_id", rec.RequestID,
			"action", action, "target", target, "err", err)
	}
}

func tenantWhat(name string) string { return fmt.Sprintf("tenant %q", name) }

func (h *Handler) listTenants(r *http.Request, _ []byte) (int, any, *apiError) {
	ts, err := h.st.ListTenants(r.Context())
	if err != nil {
		return 0, nil, h.storeError(r, "tenants", err)
	}
	out := make([]tenantJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, tenantOut(t))
	}
	return http.StatusOK, listOf(out), nil
}

func (h *Handler) createTenant(r *http.Request, body []byte) (int, any, *apiError) {
	c, e := decodeCreateTenant(body)
	if e != nil {
		return 0, nil, e
	}
	l := c.Limits.over(billing.Limits{})
	t, err := h.st.CreateTenant(r.Context(), c.Name, l)
	if err != nil {
		return 0, nil, h.storeError(r, tenantWhat(c.Name), err)
	}
	h.audit(r, store.AuditTenantCreate, t.Name, limitsDetails(l))
	return http.StatusCreated, tenantOut(t), nil
}

func limitsDetails(l billing.Limits) map[string]int64 {
	return map[string]int64{"rpm": l.RPM, "tpm": l.TPM, "max_concurrency": l.MaxConcurrency,
		"batch_rpm": l.BatchRPM, "batch_tpm": l.BatchTPM}
}

func (h *Handler) getTenant(r *http.Request, _ []byte) (int, any, *apiError) {
	name := r.PathValue("name")
	t, err := h.st.GetTenant(r.Context(), name)
	if err != nil {
		return 0, nil, h.storeError(r, tenantWhat(name), err)
	}
	return http.StatusOK, tenantOut(t), nil
}

func (h *Handler) patchTenant(r *http.Request, body []byte) (int, any, *apiError) {
	name := r.PathValue("name")
	lb, e := decodeLimits(body)
	if e != nil {
		return 0, nil, e
	}
	// Read, then write the merged limits: two PATCHes racing on different
	// fields of one tenant may lose one; the last writer's whole set wins.
	t, err := h.st.GetTenant(r.Context(), name)
	if err != nil {
		return 0, nil, h.storeError(r, tenantWhat(name), err)
	}
	l := lb.over(t.Limits)
	if t, err = h.st.SetTenantLimits(r.Context(), t.ID, l); err != nil {
		return 0, nil, h.storeError(r, tenantWhat(name), err)
	}
	h.audit(r, store.AuditTenantLimits, t.Name, limitsDetails(l))
	return http.StatusOK, tenantOut(t), nil
}

func (h *Handler) suspendTenant(r *http.Request, _ []byte) (int, any, *apiError) {
	name := r.PathValue("name")
	t, err := h.st.GetTenant(r.Context(), name)
	if err != nil {
		return 0, nil, h.storeError(r, tenantWhat(name), err)
	}
	// Suspending the caller's own tenant would lock the operator out.
	if p, _ := callerOf(r.Context()); p.TenantID == t.ID {
		return 0, nil, &apiError{Status: http.StatusConflict, Type: typeInvalidRequest, Code: "own_tenant",
			Message: fmt.Sprintf("tenant %q holds the key making this request; suspend it with another tenant's admin key", t.Name)}
	}
	if t, err = h.st.SuspendTenant(r.Context(), t.ID); err != nil {
		return 0, nil, h.storeError(r, tenantWhat(name), err)
	}
	h.audit(r, store.AuditTenantSuspend, t.Name, nil)
	return http.StatusOK, tenantOut(t), nil
}

func (h *Handler) resumeTenant(r *http.Request, _ []byte) (int, any, *apiError) {
	name := r.PathValue("name")
	t, err := h.st.ResumeTenant(r.Context(), name)
	if err != nil {
		return 0, nil, h.storeError(r, tenantWhat(name), err)
	}
	h.audit(r, store.AuditTenantResume, t.Name, nil)
	return http.StatusOK, tenantOut(t), nil
}

func (h *Handler) listKeys(r *http.Request, _ []byte) (int, any, *apiError) {
	name := r.PathValue("name")
	ks, err := h.st.ListKeys(r.Context(), name)
	if err != nil {
		return 0, nil, h.storeError(r, tenantWhat(name), err)
	}
	now := h.now()
	out := make([]keyJSON, 0, len(ks))
	for _, k := range ks {
		out = append(out, keyOut(k, now))
	}
	return http.StatusOK, listOf(out), nil
}

func (h *Handler) createKey(r *http.Request, body []byte) (int, any, *apiError) {
	name := r.PathValue("name")
	c, e := decodeCreateKey(body)
	if e != nil {
		return 0, nil, e
	}
	nk := store.NewKey{Tenant: name, Name: c.Name, Role: c.Role, Limits: c.Limits.over(billing.Limits{}), Priority: c.Priority}
	if c.Models != nil {
		nk.Models = *c.Models
	}
	if c.ExpiresIn > 0 {
		exp := h.now().Add(c.ExpiresIn)
		nk.ExpiresAt = &exp
	}
	k, secret, err := h.st.CreateKey(r.Context(), nk)
	if err != nil {
		return 0, nil, h.storeError(r, tenantWhat(name), err)
	}
	// What was granted, never the secret or its hash.
	h.audit(r, store.AuditKeyCreate, k.ID, map[string]any{"tenant": k.TenantName, "name": k.Name, "role": k.Role,
		"models": keyOut(k, h.now()).Models, "expires_at": k.ExpiresAt, "limits": limitsDetails(k.Limits),
		"priority": k.Priority})
	return http.StatusCreated, createdKeyJSON{keyJSON: keyOut(k, h.now()), Key: secret}, nil
}

func keyWhat(id string) string { return fmt.Sprintf("API key %q", id) }

func (h *Handler) getKey(r *http.Request, _ []byte) (int, any, *apiError) {
	id := r.PathValue("id")
	k, err := h.st.GetKey(r.Context(), id)
	if err != nil {
		return 0, nil, h.storeError(r, keyWhat(id), err)
	}
	return http.StatusOK, keyOut(k, h.now()), nil
}

func (h *Handler) patchKey(r *http.Request, body []byte) (int, any, *apiError) {
	id := r.PathValue("id")
	p, e := decodePatchKey(body)
	if e != nil {
		return 0, nil, e
	}
	u := store.KeyUpdate{Models: p.Models, Priority: p.Priority}
	details := map[string]any{}
	if p.Priority != nil {
		details["priority"] = *p.Priority
	}
	if p.Models != nil {
		details["models"] = *p.Models
	}
	if p.Limits.set() {
		k, err := h.st.GetKey(r.Context(), id)
		if err != nil {
			return 0, nil, h.storeError(r, keyWhat(id), err)
		}
		l := p.Limits.over(k.Limits)
		u.Limits = &l
		details["limits"] = limitsDetails(l)
	}
	k, err := h.st.UpdateKey(r.Context(), id, u)
	if err != nil {
		return 0, nil, h.storeError(r, keyWhat(id), err)
	}
	h.audit(r, store.AuditKeyUpdate, k.ID, details)
	return http.StatusOK, keyOut(k, h.now()), nil
}

func (h *Handler) revokeKey(r *http.Request, _ []byte) (int, any, *apiError) {
	id := r.PathValue("id")
	if err := h.st.RevokeKey(r.Context(), id); err != nil {
		return 0, nil, h.storeError(r, keyWhat(id), err)
	}
	k, err := h.st.GetKey(r.Context(), id)
	if err != nil {
		return 0, nil, h.storeError(r, keyWhat(id), err)
	}
	h.audit(r, store.AuditKeyRevoke, k.ID, map[string]any{"tenant": k.TenantName})
	return http.StatusOK, keyOut(k, h.now()), nil
}

func (h *Handler) listAudit(r *http.Request, _ []byte) (int, any, *apiError) {
	f, e := auditFilter(r)
	if e != nil {
		return 0, nil, e
	}
	recs, err := h.st.ListAudit(r.Context(), f)
	if err != nil {
		return 0, nil, h.storeError(r, "audit records", err)
	}
	out := make([]auditJSON, 0, len(recs))
	for _, a := range recs {
		out = append(out, auditOut(a))
	}
	l := listOf(out)
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultAuditLimit
	}
	if len(recs) == min(limit, store.MaxAuditLimit) && len(recs) > 0 {
		l.NextBefore = recs[len(recs)-1].ID
	}
	return http.StatusOK, l, nil
}

// auditFilter reads since/until (RFC 3339), limit and before from the query.
func auditFilter(r *http.Request) (store.AuditFilter, *apiError) {
	var f store.AuditFilter
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "since", "until", "limit", "before":
		default:
			return f, badRequest(k, "unknown query parameter %q; use since, until, limit or before", k)
		}
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(t.name); v != "" {
			ts, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, badRequest(t.name, "%q must be an RFC 3339 time such as 2026-01-02T15:04:05Z (got %q)", t.name, v)
			}
			*t.dst = ts
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return f, badRequest("until", "%q must be after %q", "until", "since")
	}
	for _, n := range []struct {
		name string
		max  int64
		dst  func(int64)
	}{{"limit", store.MaxAuditLimit, func(v int64) { f.Limit = int(v) }}, {"before", 1<<62 - 1, func(v int64) { f.Before = v }}} {
		if v := q.Get(n.name); v != "" {
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil || x < 1 || x > n.max {
				return f, badRequest(n.name, "%q must be a whole number from 1 to %d (got %q)", n.name, n.max, v)
			}
			n.dst(x)
		}
	}
	return f, nil
}
