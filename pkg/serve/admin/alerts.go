package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// Alerts endpoints: the delivery log, redelivery, and a tenant's own
// low-balance threshold. They need the ledger's database (Options.Alerts).

// Outbox is what the alerts endpoints use of the ledger's database.
type Outbox = ledger.Outbox

// Page sizes of GET /admin/v1/alerts/deliveries.
const (
	DefaultDeliveriesLimit = 100
	MaxDeliveriesLimit     = 1000
)

// DeliveryJSON is one delivery as the API (and `llmctl alerts deliveries
// -o json`) shows it.
type DeliveryJSON struct {
	Object         string     `json:"object"`
	ID             int64      `json:"id"`
	EventID        string     `json:"event_id"`
	Type           string     `json:"type"`
	TenantID       string     `json:"tenant_id,omitempty"`
	Endpoint       string     `json:"endpoint"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty"` // while pending
	LastStatusCode int        `json:"last_status_code,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	DeliveredAt    *time.Time `json:"delivered_at,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
}

// DeliveryOut renders a delivery.
func DeliveryOut(d ledger.Delivery) DeliveryJSON {
	out := DeliveryJSON{Object: "alert_delivery", ID: d.ID, EventID: d.EventID, Type: d.EventType, TenantID: d.TenantID,
		Endpoint: d.Endpoint, Status: string(d.Status), Attempts: d.Attempts, LastStatusCode: d.LastStatus,
		LastError: d.LastError, DeliveredAt: d.DeliveredAt, CreatedAt: d.Created}
	if d.Status == ledger.DeliveryPending {
		next := d.NextAttempt
		out.NextAttemptAt = &next
	}
	return out
}

// TenantAlertsJSON is GET|PUT /admin/v1/tenants/{name}/alerts: the
// threshold in force and whether it is the tenant's own or the default.
type TenantAlertsJSON struct {
	Object           string `json:"object"`
	Tenant           string `json:"tenant"`
	LowBalance       string `json:"low_balance"`
	LowBalanceMicros int64  `json:"low_balance_micros"`
	Source           string `json:"source"` // "tenant" or "default"
}

func alertsDisabled() *apiError {
	e := billingDisabled()
	e.Message = "alerts need the ledger: " + e.Message
	return e
}

func (h *Handler) listDeliveries(r *http.Request, _ []byte) (int, any, *apiError) {
	if h.alerts == nil {
		return 0, nil, alertsDisabled()
	}
	q := r.URL.Query()
	if e := onlyParams(q, "status", "tenant", "limit", "cursor"); e != nil {
		return 0, nil, e
	}
	f := ledger.DeliveryFilter{Status: ledger.DeliveryStatus(q.Get("status"))}
	switch f.Status {
	case "", ledger.DeliveryPending, ledger.DeliveryDelivered, ledger.DeliveryFailed:
	default:
		return 0, nil, badRequest("status", "%q must be pending, delivered or failed (got %q)", "status", f.Status)
	}
	var e *apiError
	if f.Limit, f.BeforeID, e = page(q, DefaultDeliveriesLimit, MaxDeliveriesLimit); e != nil {
		return 0, nil, e
	}
	if name := q.Get("tenant"); name != "" {
		t, err := h.st.GetTenant(r.Context(), name)
		if err != nil {
			return 0, nil, h.storeError(r, tenantWhat(name), err)
		}
		f.TenantID = t.ID
	}
	ds, err := h.alerts.Deliveries(r.Context(), f)
	if err != nil {
		return 0, nil, h.ledgerError(r, err)
	}
	out := struct {
		Object     string         `json:"object"`
		Data       []DeliveryJSON `json:"data"`
		NextCursor string         `json:"next_cursor,omitempty"`
	}{Object: "list", Data: make([]DeliveryJSON, 0, len(ds))}
	for _, d := range ds {
		out.Data = append(out.Data, DeliveryOut(d))
	}
	if len(ds) == f.Limit {
		out.NextCursor = strconv.FormatInt(ds[len(ds)-1].ID, 10)
	}
	return http.StatusOK, out, nil
}

func (h *Handler) redeliver(r *http.Request, _ []byte) (int, any, *apiError) {
	if h.alerts == nil {
		return 0, nil, alertsDisabled()
	}
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return 0, nil, notFound("delivery %q not found: ids are whole numbers, see GET /admin/v1/alerts/deliveries", v)
	}
	d, err := h.alerts.Redeliver(r.Context(), id, h.now())
	if errors.Is(err, ledger.ErrNoDelivery) {
		return 0, nil, notFound("delivery %d not found", id)
	}
	if err != nil {
		return 0, nil, h.ledgerError(r, err)
	}
	h.audit(r, store.AuditAlertsRedeliver, strconv.FormatInt(id, 10), map[string]any{"event_id": d.EventID, "endpoint": d.Endpoint})
	return http.StatusOK, DeliveryOut(d), nil
}

func (h *Handler) tenantAlerts(r *http.Request, t store.Tenant) (TenantAlertsJSON, *apiError) {
	v, own, err := h.alerts.TenantLowBalance(r.Context(), t.ID)
	if err != nil {
		return TenantAlertsJSON{}, h.ledgerError(r, err)
	}
	out := TenantAlertsJSON{Object: "tenant_alerts", Tenant: t.Name, Source: "tenant"}
	if !own {
		v, out.Source = h.alerts.LowBalance(), "default"
	}
	out.LowBalance, out.LowBalanceMicros = v.String(), int64(v)
	return out, nil
}

func (h *Handler) getTenantAlerts(r *http.Request, _ []byte) (int, any, *apiError) {
	if h.alerts == nil {
		return 0, nil, alertsDisabled()
	}
	name := r.PathValue("name")
	t, err := h.st.GetTenant(r.Context(), name)
	if err != nil {
		return 0, nil, h.storeError(r, tenantWhat(name), err)
	}
	out, e := h.tenantAlerts(r, t)
	if e != nil {
		return 0, nil, e
	}
	return http.StatusOK, out, nil
}

// putTenantAlerts sets {"low_balance": "2.00"}, or {"low_balance": null}
// to fall back to the default; "0" turns balance.low off for the tenant.
func (h *Handler) putTenantAlerts(r *http.Request, body []byte) (int, any, *apiError) {
	if h.alerts == nil {
		return 0, nil, alertsDisabled()
	}
	var (
		v   *ledger.Micros
		set bool
	)
	e := decodeObject(body, map[string]field{"low_balance": func(name string, raw json.RawMessage) *apiError {
		set = true
		if string(raw) == "null" {
			return nil
		}
		var s string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return badRequest(name, "%q must be a string of currency units such as \"2.00\", or null for the default", name)
		}
		m, err := ledger.ParseMicros(s)
		if err != nil || m < 0 || strings.TrimSpace(s) != s {
			return badRequest(name, "%q must be a decimal of currency units, at least 0, with at most 6 fractional digits (got %q)", name, s)
		}
		v = &m
		return nil
	}})
	if e != nil {
		return 0, nil, e
	}
	if !set {
		return 0, nil, badRequest("low_balance", "%q is required: \"2.00\", \"0\" to turn balance.low off, or null for the default", "low_balance")
	}
	name := r.PathValue("name")
	t, err := h.st.GetTenant(r.Context(), name)
	if err != nil {
		return 0, nil, h.storeError(r, tenantWhat(name), err)
	}
	if err := h.alerts.SetTenantLowBalance(r.Context(), t.ID, v, h.now()); err != nil {
		return 0, nil, h.ledgerError(r, err)
	}
	details := map[string]any{"low_balance": nil}
	if v != nil {
		details["low_balance"] = v.String()
	}
	h.audit(r, store.AuditAlertsThreshold, t.Name, details)
	out, e := h.tenantAlerts(r, t)
	if e != nil {
		return 0, nil, e
	}
	return http.StatusOK, out, nil
}
