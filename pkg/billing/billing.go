// Package billing is the money side of llmctl: tenants and API keys (store),
// the append-only ledger, rate limits and payment webhooks. This root package
// holds only the small value types shared with the gateway, so that pkg/serve
// can declare the interfaces it consumes and billing's sub-packages can
// implement them without importing serve.
package billing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Principal is an authenticated caller: the tenant and the key it presented.
type Principal struct {
	TenantID   string
	TenantName string
	KeyID      string // the key's public id, never the secret
	// Role is what the key may do; the zero value is no admin right.
	Role Role
	// Models the key may use; empty means every model.
	Models    []string
	ExpiresAt *time.Time
	// Limits stored on the key and tenant; zero fields mean "use the default".
	KeyLimits    Limits
	TenantLimits Limits
	// Priority is the key's stored priority in the admission queue
	// (CheckPriority); "" = not set.
	Priority string `json:",omitempty"`
}

// Role is what a key may do: a user key calls the model API, an admin key
// the admin API as well.
type Role string

// The roles a key can have.
const (
	RoleUser  Role = "user"
	RoleAdmin Role = "admin"
)

// ParseRole checks a role name; "" is RoleUser, the default.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case "":
		return RoleUser, nil
	case RoleUser, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("role %q: must be %s or %s", s, RoleUser, RoleAdmin)
}

// IsAdmin reports whether the key may use the admin API.
func (p Principal) IsAdmin() bool { return p.Role == RoleAdmin }

// Allows reports whether the key may use model.
func (p Principal) Allows(model string) bool {
	if len(p.Models) == 0 {
		return true
	}
	for _, m := range p.Models {
		if m == model {
			return true
		}
	}
	return false
}

// Limits are per-minute and concurrency limits; 0 means unset.
type Limits struct {
	RPM            int64 `json:"rpm,omitempty"`
	TPM            int64 `json:"tpm,omitempty"`
	MaxConcurrency int64 `json:"maxConcurrency,omitempty"`
	// BatchRPM and BatchTPM limit batch lines (the Batches API), counted
	// apart from RPM and TPM; stored on a key or tenant only (the config's
	// batch limits are limits.batch).
	BatchRPM int64 `json:"batchRpm,omitempty"`
	BatchTPM int64 `json:"batchTpm,omitempty"`
}

// Usage is what one request consumed, in tokens. Its JSON is OpenAI's usage
// object (usage.go): CachedPromptTokens is prompt_tokens_details.cached_tokens.
type Usage struct {
	PromptTokens     int64
	CompletionTokens int64
	// CachedPromptTokens is the part of PromptTokens the backend served from
	// its prefix cache (0 when it reports none).
	CachedPromptTokens int64
}

// Total is prompt plus completion tokens.
func (u Usage) Total() int64 { return u.PromptTokens + u.CompletionTokens }

// Authentication refusals: an Authenticator returns an error wrapping one of
// these for a key that grants no access (the gateway answers 401 with the
// matching message); any other error is a failure to check the key (503).
// They live here, beside Principal, so the gateway branches on billing's
// values and not on a store implementation's.
var (
	ErrInvalidKey = errors.New("invalid API key")
	ErrRevoked    = errors.New("API key revoked")
	ErrExpired    = errors.New("API key expired")
	// ErrSuspended: the key's tenant is suspended. An error wrapping it
	// also wraps ErrInvalidKey, so a caller that does not know it refuses.
	ErrSuspended = errors.New("tenant suspended")
)

// ErrInsufficientQuota is returned (wrapped) by a Reserver when the tenant's
// balance cannot cover a request's maximum cost; the gateway answers 402.
var ErrInsufficientQuota = errors.New("insufficient quota")

// ErrModelNotPriced is returned (wrapped) by a Reserver for a model that has
// no price under a reject policy; the gateway answers 403 model_not_priced
// (a retry cannot help: the operator must price the model).
var ErrModelNotPriced = errors.New("no price configured for model")

// LimitError refuses a request for exceeding a rate limit; the gateway
// answers 429 rate_limit_exceeded with Retry-After and Header, or, when
// TooLarge, 400 request_too_large without Retry-After.
type LimitError struct {
	Message    string
	RetryAfter time.Duration
	Header     http.Header // x-ratelimit-* headers
	// TooLarge: the request alone exceeds the limit, so no retry can ever
	// be admitted (RetryAfter is 0). A 429 would make clients retry in vain.
	TooLarge bool
}

func (e *LimitError) Error() string { return e.Message }

// Ticket is an admitted request's claim on rate limits (concurrency slot,
// TPM reservation). Done is called exactly once, with actual usage.
type Ticket interface {
	// Header holds the x-ratelimit-* headers for the response.
	Header() http.Header
	// Done settles tokens to actual usage and frees the concurrency slot.
	Done(ctx context.Context, used Usage)
}

// ReserveRequest asks the ledger to hold a request's maximum possible cost.
type ReserveRequest struct {
	Principal    Principal
	RequestID    string // idempotency key of the charge
	Model        string
	PromptTokens int64 // estimate before forwarding
	MaxTokens    int64 // max completion tokens of all choices (max_tokens × max(n, best_of))
	// EndUser is the request's OpenAI `user` field, recorded on its charge.
	EndUser string
	// BatchID is the batch this request is a line of ("" for none): it is
	// charged at the model's batch price.
	BatchID string
}

// Hold is a reservation in the ledger. Settle is called exactly once: it
// charges used (zero usage releases everything) and must never block on, nor
// lose the entry to, a slow or absent database.
type Hold interface {
	Settle(ctx context.Context, used Usage)
}
