package billing

import (
	"encoding/json"
	"errors"
	"fmt"
)

// usageJSON is OpenAI's usage object, of which the gateway reads the token
// counts and prompt_tokens_details.cached_tokens (sent by OpenAI, vLLM with
// prefix caching, and others; absent means none were cached).
type usageJSON struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details,omitempty"`
}

// UnmarshalJSON reads an OpenAI usage object.
func (u *Usage) UnmarshalJSON(b []byte) error {
	var w usageJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*u = Usage{PromptTokens: w.PromptTokens, CompletionTokens: w.CompletionTokens}
	if w.PromptTokensDetails != nil {
		u.CachedPromptTokens = w.PromptTokensDetails.CachedTokens
	}
	return nil
}

// MarshalJSON writes an OpenAI usage object; prompt_tokens_details only
// when some prompt tokens were cached.
func (u Usage) MarshalJSON() ([]byte, error) {
	w := usageJSON{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}
	if u.CachedPromptTokens != 0 {
		w.PromptTokensDetails = &struct {
			CachedTokens int64 `json:"cached_tokens"`
		}{u.CachedPromptTokens}
	}
	return json.Marshal(w)
}

// Cached is CachedPromptTokens bounded to [0, PromptTokens]: a backend that
// reports more cached tokens than prompt tokens (or a negative count) must
// not turn into a negative charge for the rest of the prompt.
func (u Usage) Cached() int64 { return min(max(u.CachedPromptTokens, 0), max(u.PromptTokens, 0)) }

// QuotaError is a Reserver's refusal for want of balance, with the numbers a
// client needs to understand it; it wraps ErrInsufficientQuota. Amounts are
// in micro-units of the currency (millionths), like the ledger's.
type QuotaError struct {
	Balance   int64 // the tenant's settled balance
	Reserved  int64 // held by its requests in flight
	Overdraft int64 // how far below zero the operator lets a balance go
	Cost      int64 // this request's maximum cost (what it would reserve)
	// New is true when the tenant has never had an entry or a hold: it was
	// never credited, rather than having spent its credit.
	New bool
	Err error // the store's refusal
}

// Available is what new reservations may still use, overdraft included.
func (e *QuotaError) Available() int64 { return e.Balance - e.Reserved + e.Overdraft }

func (e *QuotaError) Error() string {
	return fmt.Sprintf("%v (available %d micro-units, request needs up to %d)", e.err(), e.Available(), e.Cost)
}

func (e *QuotaError) err() error {
	if e.Err == nil {
		return ErrInsufficientQuota
	}
	return e.Err
}

// Unwrap lets errors.Is(err, ErrInsufficientQuota) hold.
func (e *QuotaError) Unwrap() error { return e.err() }

// Is makes every QuotaError an ErrInsufficientQuota even without Err.
func (e *QuotaError) Is(target error) bool { return errors.Is(target, ErrInsufficientQuota) }
