package serve

import (
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// completionBudget is the most completion tokens a request may generate:
// max_tokens for each of its choices (n, best_of), saturating rather than
// wrapping, like satAdd.
func completionBudget(maxTokens, choices int64) int64 {
	if choices > 1 && maxTokens > math.MaxInt64/choices {
		return math.MaxInt64
	}
	return maxTokens * max(choices, 1)
}

// quotaRefusal is the 402 for a reservation the balance cannot cover, with
// the numbers when the ledger gave them: what is available, what this
// request may cost at most, and how to make that smaller.
func quotaRefusal(err error, cr *clientRequest, maxTokens int64) *apiError {
	e := &apiError{Status: http.StatusPaymentRequired, Type: typeQuota, Code: "insufficient_quota",
		Message: "you exceeded your current quota; add credit to continue"}
	var qe *billing.QuotaError
	if !errors.As(err, &qe) {
		return e
	}
	cost, avail := ledger.Micros(qe.Cost), ledger.Micros(qe.Available())
	if qe.New {
		e.Message = fmt.Sprintf("this account has no credit yet: this request may cost up to %s and %s is available; "+
			"ask the operator to add credit (llmctl ledger credit TENANT AMOUNT)", cost, avail)
		return e
	}
	held := ""
	if qe.Reserved != 0 {
		held = fmt.Sprintf(", %s of it held by requests in flight", ledger.Micros(qe.Reserved))
	}
	over := ""
	if qe.Overdraft != 0 {
		over = fmt.Sprintf(" (overdraft of %s included)", ledger.Micros(qe.Overdraft))
	}
	// What the maximum is made of, in the request's own terms.
	limit := fmt.Sprintf("%s=%d", cr.maxTokensField, maxTokens)
	if cr.maxTokensField == "" {
		limit = fmt.Sprintf("max_tokens unset, so %d", maxTokens)
	}
	if cr.choices > 1 {
		limit += fmt.Sprintf(" for each of %d choices", cr.choices)
	}
	if cr.endpoint == EndpointEmbeddings {
		// No max_tokens to lower: the input is all there is.
		e.Message = fmt.Sprintf("insufficient balance: this request may cost up to %s (about %d input tokens) "+
			"but only %s is available (balance %s%s)%s; add credit or send less input",
			cost, cr.promptEstimate, avail, ledger.Micros(qe.Balance), held, over)
		return e
	}
	e.Message = fmt.Sprintf("insufficient balance: this request may cost up to %s (about %d prompt tokens, %s) "+
		"but only %s is available (balance %s%s)%s; lower max_tokens (or n) to lower its maximum cost, or add credit",
		cost, cr.promptEstimate, limit, avail, ledger.Micros(qe.Balance), held, over)
	return e
}
