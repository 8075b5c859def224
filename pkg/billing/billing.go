// Package billing is the money side of llmctl: tenants and API keys (store),
// the append-only ledger, rate limits and payment webhooks. This root package
// holds only the small value types shared with the gateway, so that pkg/serve
// can declare the interfaces it consumes and billing's sub-packages can
// implement them without importing serve.
package billing

import "time"

// Principal is an authenticated caller: the tenant and the key it presented.
type Principal struct {
	TenantID   string
	TenantName string
	KeyID      string // the key's public id, never the secret
	// Models the key may use; empty means every model.
	Models    []string
	ExpiresAt *time.Time
	// Limits stored on the key and tenant; zero fields mean "use the default".
	KeyLimits    Limits
	TenantLimits Limits
}

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
}

// Usage is what one request consumed, in tokens.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// Total is prompt plus completion tokens.
func (u Usage) Total() int64 { return u.PromptTokens + u.CompletionTokens }
