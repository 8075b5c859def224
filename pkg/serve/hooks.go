package serve

import (
	"context"

	"github.com/llmctl/llmctl/pkg/billing"
)

// Authenticator turns a bearer API key into a Principal. It returns an error
// wrapping billing.ErrInvalidKey / ErrRevoked / ErrExpired / ErrSuspended
// for a bad key; any other error is a failure to check it (503).
type Authenticator interface {
	Authenticate(ctx context.Context, bearer string) (billing.Principal, error)
}

// Admitter applies rate limits (pkg/billing/limits). It returns a
// *billing.LimitError to refuse; any other error is a limiter failure.
// maxTokens is the request's worst case for TPM: the prompt estimate plus
// max_tokens (or the gateway's default cap); Ticket.Done settles it.
type Admitter interface {
	Admit(ctx context.Context, p billing.Principal, model string, maxTokens int64) (billing.Ticket, error)
}

// Reserver holds a request's maximum cost in the ledger before forwarding
// (pkg/billing/ledger). An error wrapping billing.ErrInsufficientQuota → 402;
// a *billing.BudgetError → 429 budget_exceeded.
type Reserver interface {
	Reserve(ctx context.Context, r billing.ReserveRequest) (billing.Hold, error)
}
