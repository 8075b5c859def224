package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// Vouchers is what the admin API needs of the ledger's vouchers; a
// ledger.Store is one.
type Vouchers interface {
	CreateVouchers(ctx context.Context, vs []ledger.Voucher) error
	Vouchers(ctx context.Context, f ledger.VoucherFilter) ([]ledger.Voucher, error)
	RevokeVoucher(ctx context.Context, id string, at time.Time) (ledger.Voucher, error)
}

// Audit actions of vouchers. Their details never hold a code.
const (
	AuditVoucherCreate = "voucher.create"
	AuditVoucherRevoke = "voucher.revoke"
)

// VoucherJSON is a voucher as the API shows it; Code only in the answer
// that created it.
type VoucherJSON struct {
	Object       string `json:"object"`
	ID           string `json:"id"`
	Code         string `json:"code,omitempty"`
	Amount       string `json:"amount"`
	AmountMicros int64  `json:"amount_micros"`
	// Tenant is the only tenant that may redeem it; "" = any.
	Tenant     string     `json:"tenant,omitempty"`
	State      string     `json:"state"` // active, redeemed, revoked, expired
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RedeemedAt *time.Time `json:"redeemed_at"`
	RedeemedBy string     `json:"redeemed_by,omitempty"` // tenant name
	RevokedAt  *time.Time `json:"revoked_at"`
}

// VoucherOut renders v; names maps tenant ids to names (an id not in it is
// shown as is).
func VoucherOut(v ledger.Voucher, code string, names map[string]string, now time.Time) VoucherJSON {
	name := func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		return id
	}
	return VoucherJSON{Object: "voucher", ID: v.ID, Code: code, Amount: v.Amount.String(), AmountMicros: int64(v.Amount),
		Tenant: name(v.TenantID), State: v.State(now), CreatedAt: v.Created, ExpiresAt: v.Expires,
		RedeemedAt: v.Redeemed, RedeemedBy: name(v.RedeemedBy), RevokedAt: v.Revoked}
}

func vouchersDisabled() *apiError {
	return &apiError{Status: http.StatusNotImplemented, Type: typeInvalidRequest, Code: "billing_disabled", Message: BillingDisabled}
}

// createVouchersBody is POST /admin/v1/vouchers.
type createVouchersBody struct {
	Amount    ledger.Micros
	Count     int
	ExpiresIn time.Duration
	Tenant    string
}

func decodeCreateVouchers(body []byte) (createVouchersBody, *apiError) {
	var (
		c               createVouchersBody
		amount, expires string
		n               *int64
	)
	if e := decodeObject(body, map[string]field{"amount": text(&amount), "count": count(&n),
		"expires_in": text(&expires), "tenant": text(&c.Tenant)}); e != nil {
		return c, e
	}
	m, err := ledger.ParseMicros(amount)
	if err != nil || m <= 0 || strings.TrimSpace(amount) != amount {
		return c, badRequest("amount", "%q is required: a positive decimal string of currency units such as \"10\" or \"12.50\" (got %q)", "amount", amount)
	}
	c.Amount, c.Count = m, 1
	if n != nil {
		if *n < 1 || *n > ledger.MaxVouchersPerIssue {
			return c, badRequest("count", "%q must be 1 to %d", "count", ledger.MaxVouchersPerIssue)
		}
		c.Count = int(*n)
	}
	if expires != "" {
		d, err := time.ParseDuration(expires)
		if err != nil || d <= 0 {
			return c, badRequest("expires_in", "%q must be a positive duration such as \"2160h\" (got %q)", "expires_in", expires)
		}
		c.ExpiresIn = d
	}
	return c, nil
}

// tenantNames maps every tenant id to its name, for listings.
func (h *Handler) tenantNames(r *http.Request) (map[string]string, *apiError) {
	ts, err := h.st.ListTenants(r.Context())
	if err != nil {
		return nil, h.storeError(r, "tenants", err)
	}
	m := make(map[string]string, len(ts))
	for _, t := range ts {
		m[t.ID] = t.Name
	}
	return m, nil
}

func (h *Handler) createVouchers(r *http.Request, body []byte) (int, any, *apiError) {
	if h.vouch == nil {
		return 0, nil, vouchersDisabled()
	}
	c, e := decodeCreateVouchers(body)
	if e != nil {
		return 0, nil, e
	}
	var t store.Tenant
	if c.Tenant != "" {
		var err error
		if t, err = h.st.GetTenant(r.Context(), c.Tenant); err != nil {
			return 0, nil, h.storeError(r, tenantWhat(c.Tenant), err)
		}
	}
	now := h.now()
	issued, err := ledger.IssueVouchers(r.Context(), h.vouch, ledger.IssueRequest{Amount: c.Amount, Count: c.Count, TenantID: t.ID, Expires: c.ExpiresIn, Now: now})
	if err != nil {
		return 0, nil, h.ledgerError(r, err)
	}
	out := make([]VoucherJSON, len(issued))
	names := map[string]string{t.ID: t.Name}
	for i, v := range issued {
		out[i] = VoucherOut(v.Voucher, v.Code, names, now)
	}
	h.audit(r, AuditVoucherCreate, t.Name, VoucherAuditDetails(issued))
	return http.StatusCreated, listOf(out), nil
}

// VoucherAuditDetails describes created vouchers for the audit log: how
// many, of what, and their ids (up to 200), never their codes.
func VoucherAuditDetails(issued []ledger.Issued) map[string]any {
	d := map[string]any{"count": len(issued)}
	if len(issued) == 0 {
		return d
	}
	v := issued[0]
	d["amount"], d["expires_at"] = v.Amount.String(), v.Expires
	ids := make([]string, 0, min(len(issued), 200))
	for _, v := range issued[:cap(ids)] {
		ids = append(ids, v.ID)
	}
	d["ids"] = ids
	return d
}

func (h *Handler) listVouchers(r *http.Request, _ []byte) (int, any, *apiError) {
	if h.vouch == nil {
		return 0, nil, vouchersDisabled()
	}
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return 0, nil, badRequest("limit", "%q must be a positive whole number (got %q)", "limit", s)
		}
		limit = n
	}
	vs, err := h.vouch.Vouchers(r.Context(), ledger.VoucherFilter{Limit: limit})
	if err != nil {
		return 0, nil, h.ledgerError(r, err)
	}
	names, e := h.tenantNames(r)
	if e != nil {
		return 0, nil, e
	}
	now := h.now()
	out := make([]VoucherJSON, len(vs))
	for i, v := range vs {
		out[i] = VoucherOut(v, "", names, now)
	}
	return http.StatusOK, listOf(out), nil
}

func (h *Handler) revokeVoucher(r *http.Request, _ []byte) (int, any, *apiError) {
	if h.vouch == nil {
		return 0, nil, vouchersDisabled()
	}
	id := r.PathValue("id")
	v, err := h.vouch.RevokeVoucher(r.Context(), id, h.now())
	switch {
	case errors.Is(err, ledger.ErrVoucherNotFound):
		return 0, nil, notFound("voucher %q not found", id)
	case errors.Is(err, ledger.ErrVoucherSpent):
		return 0, nil, &apiError{Status: http.StatusConflict, Type: typeInvalidRequest, Code: "conflict",
			Message: "voucher " + strconv.Quote(id) + " is already redeemed or revoked"}
	case err != nil:
		return 0, nil, h.ledgerError(r, err)
	}
	names, e := h.tenantNames(r)
	if e != nil {
		return 0, nil, e
	}
	h.audit(r, AuditVoucherRevoke, v.ID, map[string]any{"amount": v.Amount.String()})
	return http.StatusOK, VoucherOut(v, "", names, h.now()), nil
}
