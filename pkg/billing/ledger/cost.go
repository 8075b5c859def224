package ledger

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/llmctl/llmctl/pkg/billing"
)

// cachedInput is the price of a cached prompt token: CachedInput, or Input
// when unset.
func (pr Price) cachedInput() Micros {
	if pr.CachedInput == nil {
		return pr.Input
	}
	return *pr.CachedInput
}

// Cost is the charge for usage at this price:
//
//	ceil((uncached×Input + cached×CachedInput + completion×Output) / 1,000,000) + PerRequest
//
// where cached = u.Cached() (at most the prompt tokens) and uncached is the
// rest of the prompt. The token part is rounded up once, over the sum, to a
// whole micro-unit (a request never costs less than what it used, and never
// more than one micro-unit above it); PerRequest is added exactly. It
// computes in 128 bits, so it is exact; a result beyond int64 is an error,
// never a wrapped amount.
func (pr Price) Cost(u billing.Usage) (Micros, error) {
	if u.PromptTokens < 0 || u.CompletionTokens < 0 || u.CachedPromptTokens < 0 {
		return 0, fmt.Errorf("negative token count %+v", u)
	}
	cached := u.Cached()
	var hi, lo uint64
	overflow := false
	add := func(tokens int64, price Micros) {
		h, l := bits.Mul64(uint64(tokens), uint64(price))
		var c uint64
		lo, c = bits.Add64(lo, l, 0)
		hi, c = bits.Add64(hi, h, c)
		overflow = overflow || c != 0
	}
	add(u.PromptTokens-cached, pr.Input)
	add(cached, pr.cachedInput())
	add(u.CompletionTokens, pr.Output)
	add(1, 999_999) // rounds the division up
	if overflow || hi >= 1_000_000 {
		return 0, fmt.Errorf("cost of %+v overflows", u)
	}
	q, _ := bits.Div64(hi, lo, 1_000_000)
	if q > math.MaxInt64-uint64(pr.PerRequest) {
		return 0, fmt.Errorf("cost of %+v overflows", u)
	}
	return Micros(q) + pr.PerRequest, nil
}
