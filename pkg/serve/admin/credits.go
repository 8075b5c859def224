package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// Ledger is what the admin API needs from the billing ledger: the write
// path of *ledger.Ledger (Credit) and the reads of its ledger.Store.
type Ledger interface {
	Credit(ctx context.Context, e ledger.Entry) (bool, error)
	Account(ctx context.Context, tenantID string) (ledger.Account, error)
	Entries(ctx context.Context, f ledger.Filter) ([]ledger.Entry, error)
	Spend(ctx context.Context, w ledger.SpendWindow) ([]ledger.Spend, error)
}

// LedgerView adapts a *ledger.Ledger to Ledger (and to serve.Accounts):
// writes go through the Ledger, reads to its Store.
type LedgerView struct{ l *ledger.Ledger }

// FromLedger wraps l.
func FromLedger(l *ledger.Ledger) LedgerView { return LedgerView{l} }

// Credit writes e synchronously; false if its key was already applied.
func (v LedgerView) Credit(ctx context.Context, e ledger.Entry) (bool, error) {
	return v.l.Credit(ctx, e)
}

// Account is the tenant's balance and open holds.
func (v LedgerView) Account(ctx context.Context, tenantID string) (ledger.Account, error) {
	return v.l.Store().Account(ctx, tenantID)
}

// Entries lists the entries f selects.
func (v LedgerView) Entries(ctx context.Context, f ledger.Filter) ([]ledger.Entry, error) {
	return v.l.Store().Entries(ctx, f)
}

// Spend sums debits and releases over a window, per tenant (and model).
func (v LedgerView) Spend(ctx context.Context, w ledger.SpendWindow) ([]ledger.Spend, error) {
	return v.l.Store().Spend(ctx, w)
}

// BillingDisabled is the answer of the ledger's endpoints when serve runs
// without a ledger (no --prices): clear about why, rather than a 404.
const BillingDisabled = "billing is not enabled: start llmctl serve with --prices (or a payment webhook secret) to use the ledger"

func billingDisabled() *apiError {
	return &apiError{Status: http.StatusNotImplemented, Type: typeInvalidRequest, Code: "billing_disabled", Message: BillingDisabled}
}

// maxIdempotencyKey leaves room for the "admin:<tenant id>:" namespace
// within the ledger's 256-byte key.
const maxIdempotencyKey = 200

// creditKey namespaces a caller's idempotency key by tenant, so that it can
// neither collide with the gateway's own keys ("charge:…") nor with the same
// key sent for another tenant: either would silently change nothing.
func creditKey(tenantID, key string) string { return "admin:" + tenantID + ":" + key }

// credit is POST /admin/v1/tenants/{name}/credits.
type credit struct {
	Amount         ledger.Micros
	Reason         string
	IdempotencyKey string
}

func decodeCredit(body []byte) (credit, *apiError) {
	var (
		c      credit
		amount *string
	)
	fs := map[string]field{
		"amount": func(name string, raw json.RawMessage) *apiError {
			var s string
			if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
				return badRequest(name, "%q must be a string of currency units such as \"12.50\" (a JSON number could lose cents)", name)
			}
			amount = &s
			return nil
		},
		"reason": text(&c.Reason), "idempotency_key": text(&c.IdempotencyKey),
	}
	if e := decodeObject(body, fs); e != nil {
		return c, e
	}
	if amount == nil {
		return c, badRequest("amount", "%q is required: currency units such as \"12.50\", negative to debit", "amount")
	}
	// ParseMicros trims spaces and accepts a sign; an exponent, more than
	// six fractional digits (below one micro-unit) or anything else fails.
	m, err := ledger.ParseMicros(*amount)
	if err != nil || strings.TrimSpace(*amount) != *amount {
		return c, badRequest("amount", "%q must be a decimal of currency units with at most 6 fractional digits, such as \"12.50\" or \"-3\" (got %q)", "amount", *amount)
	}
	if m == 0 {
		return c, badRequest("amount", "%q must not be zero", "amount")
	}
	c.Amount = m
	if strings.TrimSpace(c.Reason) == "" {
		return c, badRequest("reason", "%q is required: every credit or debit says why", "reason")
	}
	if len(c.Reason) > 1024 {
		return c, badRequest("reason", "%q is longer than 1024 bytes", "reason")
	}
	// Both go into the ledger and the audit log, which must never hold a key
	// (AppendAudit would refuse the record after the money had moved).
	for _, f := range [...]struct{ name, v string }{{"idempotency_key", c.IdempotencyKey}, {"reason", c.Reason}} {
		if strings.Contains(f.v, store.KeyPrefix) {
			return c, badRequest(f.name, "%q must not contain an API key", f.name)
		}
	}
	if len(c.IdempotencyKey) > maxIdempotencyKey {
		return c, badRequest("idempotency_key", "%q is longer than %d bytes", "idempotency_key", maxIdempotencyKey)
	}
	for _, r := range c.IdempotencyKey {
		if r <= ' ' || r == 0x7f {
			return c, badRequest("idempotency_key", "%q must not contain spaces or control characters", "idempotency_key")
		}
	}
	return c, nil
}

// entryJSON is a ledger entry as the admin API shows it: the amount both as
// a decimal string and as an integer of micro-units.
type entryJSON struct {
	Object       string `json:"object"`
	Tenant       string `json:"tenant"`
	Kind         string `json:"kind"`
	Amount       string `json:"amount"`
	AmountMicros int64  `json:"amount_micros"`
	// Model and tokens are a charged request's (kind debit or release).
	Model            string `json:"model,omitempty"`
	KeyID            string `json:"key_id,omitempty"` // the API key that made the request
	PromptTokens     int64  `json:"prompt_tokens,omitempty"`
	CompletionTokens int64  `json:"completion_tokens,omitempty"`
	// The request's OpenAI user field and its prompt tokens the backend
	// served from cache (charged at cachedInput).
	EndUser            string `json:"end_user,omitempty"`
	CachedPromptTokens int64  `json:"cached_prompt_tokens,omitempty"`
	// BatchID is the batch whose line a debit or release charges.
	BatchID string `json:"batch_id,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// The key the client sent with a credit; the gateway's own are internal.
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

func entryOut(e ledger.Entry, tenant, key string) entryJSON {
	return entryJSON{Object: "ledger_entry", Tenant: tenant, Kind: string(e.Kind), Amount: e.Amount.String(),
		AmountMicros: int64(e.Amount), Model: e.Model, KeyID: e.KeyID, PromptTokens: e.PromptTokens, CompletionTokens: e.CompletionTokens,
		EndUser: e.EndUser, CachedPromptTokens: e.CachedPromptTokens, BatchID: e.BatchID, Reason: e.Reason, IdempotencyKey: key, CreatedAt: e.Time.UTC()}
}

// BalanceJSON is a tenant's account: decimal strings for people, micro-unit
// integers for programs. /v1/me shows the same fields.
type BalanceJSON struct {
	Balance         string `json:"balance"`
	BalanceMicros   int64  `json:"balance_micros"`
	Reserved        string `json:"reserved"`
	ReservedMicros  int64  `json:"reserved_micros"`
	Available       string `json:"available"`
	AvailableMicros int64  `json:"available_micros"`
}

// BalanceOut renders an account.
func BalanceOut(a ledger.Account) BalanceJSON {
	return BalanceJSON{Balance: a.Balance.String(), BalanceMicros: int64(a.Balance),
		Reserved: a.Reserved.String(), ReservedMicros: int64(a.Reserved),
		Available: a.Available().String(), AvailableMicros: int64(a.Available())}
}

type balanceJSON struct {
	Object string `json:"object"`
	Tenant string `json:"tenant"`
	BalanceJSON
}

func (h *Handler) ledgerError(r *http.Request, err error) *apiError {
	if r.Context().Err() != nil {
		return &apiError{Status: 499, Type: typeServer, Code: "client_closed", Message: "client closed the request"}
	}
	if errors.Is(err, ledger.ErrInvalidEntry) {
		return badRequest("", "the ledger refused the entry: %v", err)
	}
	h.log.ErrorContext(r.Context(), "admin api: ledger", "request_id", r.Header.Get("X-Request-Id"), "err", err)
	return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "ledger_unavailable",
		Message: "the ledger database could not be reached; nothing was written, try again with the same idempotency_key"}
}

func (h *Handler) createCredit(r *http.Request, body []byte) (int, any, *apiError) {
	if h.ledger == nil {
		return 0, nil, billingDisabled()
	}
	name := r.PathValue("name")
	c, e := decodeCredit(body)
	if e != nil {
		return 0, nil, e
	}
	t, err := h.st.GetTenant(r.Context(), name)
	if err != nil {
		return 0, nil, h.storeError(r, tenantWhat(name), err)
	}
	if c.IdempotencyKey == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		c.IdempotencyKey = hex.EncodeToString(b[:])
	}
	kind := ledger.KindCredit
	if c.Amount < 0 {
		kind = ledger.KindAdjustment // a debit by the operator: a correction
	}
	// The store keeps micro-seconds: truncate so a replay shows the same time.
	ent := ledger.Entry{Key: creditKey(t.ID, c.IdempotencyKey), TenantID: t.ID, Kind: kind, Amount: c.Amount,
		Reason: c.Reason, Time: h.now().UTC().Truncate(time.Microsecond)}
	added, err := h.ledger.Credit(r.Context(), ent)
	if err != nil {
		return 0, nil, h.ledgerError(r, err)
	}
	if added {
		h.audit(r, store.AuditCredit, t.Name, map[string]any{"amount": ent.Amount.String(), "kind": ent.Kind,
			"reason": ent.Reason, "idempotency_key": c.IdempotencyKey})
		return http.StatusCreated, entryOut(ent, t.Name, c.IdempotencyKey), nil
	}
	// A replay: answer with what was written the first time. There is no
	// lookup by key in the ledger, so this reads the tenant's entries;
	// replays are rare (a client's retry).
	es, err := h.ledger.Entries(r.Context(), ledger.Filter{TenantID: t.ID})
	if err != nil {
		return 0, nil, h.ledgerError(r, err)
	}
	for _, old := range es {
		if old.Key == ent.Key {
			return http.StatusOK, entryOut(old, t.Name, c.IdempotencyKey), nil
		}
	}
	// The key is namespaced by tenant, so it cannot be another tenant's.
	h.log.ErrorContext(r.Context(), "admin api: replayed credit not found", "request_id", r.Header.Get("X-Request-Id"), "tenant", t.Name)
	return 0, nil, internal()
}

func (h *Handler) getBalance(r *http.Request, _ []byte) (int, any, *apiError) {
	if h.ledger == nil {
		return 0, nil, billingDisabled()
	}
	name := r.PathValue("name")
	t, err := h.st.GetTenant(r.Context(), name)
	if err != nil {
		return 0, nil, h.storeError(r, tenantWhat(name), err)
	}
	a, err := h.ledger.Account(r.Context(), t.ID)
	if err != nil {
		return 0, nil, h.ledgerError(r, err)
	}
	return http.StatusOK, balanceJSON{Object: "balance", Tenant: t.Name, BalanceJSON: BalanceOut(a)}, nil
}
