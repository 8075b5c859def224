package serve

// The gateway's side of the admission queue: who a request is in the
// fairness order, and what a refusal answers.

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/llmctl/llmctl/pkg/billing"
)

// startQueue creates the admission queue unless it is turned off.
func (g *Gateway) startQueue() error {
	m, err := newQueueMetrics(g.registry)
	if err != nil {
		return fmt.Errorf("serve: register queue metrics: %w", err)
	}
	g.queueMetrics = m
	qo := g.opts.Queue
	if qo.MaxWait < 0 {
		return nil
	}
	for name, p := range qo.Priorities {
		if _, ok := tierOf(p); !ok {
			return fmt.Errorf("serve: queue priority of %q is %q; use high, normal or low", name, p)
		}
	}
	q := newQueue(qo, nil)
	q.m = m
	g.router.q = q
	return nil
}

// whoIs places p in the queue's order: its priority (the key's entry, else
// the tenant's by id or name) and its tenant's weight.
func (g *Gateway) whoIs(p billing.Principal) who {
	qo := g.opts.Queue
	w := who{tenant: p.TenantID, tier: 1, weight: 1}
	for _, k := range []string{p.KeyID, p.TenantID, p.TenantName} {
		if pr, ok := qo.Priorities[k]; ok && k != "" {
			w.tier, _ = tierOf(pr)
			w.priority = pr
			break
		}
	}
	for _, k := range []string{p.TenantID, p.TenantName} {
		if n, ok := qo.Weights[k]; ok && k != "" && n > 0 {
			w.weight = n
			break
		}
	}
	return w
}

// enqueue waits for a backend slot for cr's model (with no queue it only
// looks for a free one). A nil lease with no error means no backend can
// take it now; a *capacityError is the queue's refusal; ctx's error means
// the client left while queued.
func (g *Gateway) enqueue(r *http.Request, p billing.Principal, cr *clientRequest, model string) (*lease, error) {
	if g.router.q == nil {
		return g.router.lease(model, g.unfit(cr, model)), nil
	}
	return g.router.acquire(r.Context(), model, g.unfit(cr, model), g.whoIs(p), 0)
}

// queueError answers a refusal of the queue or a client that left.
func queueError(r *http.Request, err error) *apiError {
	if ce, ok := errors.AsType[*capacityError](err); ok {
		return capacityExceeded(ce)
	}
	if errors.Is(err, context.Canceled) || r.Context().Err() != nil {
		return requestEnded(r)
	}
	return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "no_backend",
		Message: "no backend could take the request; try again"}
}
