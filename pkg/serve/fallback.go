package serve

// Fallbacks (docs/routing.md): when no backend of a model can take a
// request before its first byte (none healthy, all failed, or, with
// FallbackOnQueue, the queue refused it), the next model of its fallback
// list answers. The answer says so (x-llmctl-fallback, and the model field
// the backend writes), and the ledger charges the fallback model's price:
// the hold is taken for the model that answers.

import (
	"errors"
	"net/http"

	"github.com/llmctl/llmctl/pkg/billing"
)

// fallbackHeader names the model that answered in place of the one asked.
const fallbackHeader = "X-Llmctl-Fallback"

// fallbackChain is model followed by its fallbacks that exist now and p
// may use (the list of the model asked for, aliases resolved; not followed
// further, so no list can loop).
func (g *Gateway) fallbackChain(p billing.Principal, model string) []string {
	chain := []string{model}
	for _, name := range g.opts.Fallbacks[model] {
		fb, known := g.router.resolve(name)
		if !known || (!p.Allows(name) && !p.Allows(fb)) {
			continue
		}
		dup := false
		for _, c := range chain {
			dup = dup || c == fb
		}
		if !dup {
			chain = append(chain, fb)
		}
	}
	return chain
}

// choose finds the first model of chain with a backend to take the
// request, waiting in the queue as configured, and returns its index and
// lease. The last model is returned without a lease when it has no
// backend (forward answers 503 no_backend, as without fallbacks).
func (g *Gateway) choose(r *http.Request, p billing.Principal, cr *clientRequest, chain []string) (int, *lease, *apiError) {
	maxWait, aerr := requestMaxWait(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	for i, model := range chain {
		last := i == len(chain)-1
		l, err := g.enqueue(r, p, cr, model, maxWait)
		switch {
		case err == nil && l != nil:
			return i, l, nil
		case err == nil && last:
			return i, nil, nil
		case err == nil:
			continue
		}
		var ce *capacityError
		if errors.As(err, &ce) && g.opts.FallbackOnQueue && !last && r.Context().Err() == nil {
			continue
		}
		return i, nil, queueError(r, err)
	}
	return len(chain) - 1, nil, nil // not reached: chain is never empty
}

// fellBack records that to answers in place of from.
func (g *Gateway) fellBack(w http.ResponseWriter, st *reqState, from, to string) {
	w.Header().Set(fallbackHeader, to)
	st.model = to
	g.queueMetrics.fallbacks.WithLabelValues(from, to).Inc()
	g.log.Info("fallback", "request_id", st.id, "from", from, "to", to)
}
