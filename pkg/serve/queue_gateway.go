package serve

// The gateway's side of the admission queue: who a request is in the
// fairness order, and what a refusal answers.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

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
	if err := g.registry.Register(batchSlots{g.router}); err != nil { // batchmetrics.go
		return fmt.Errorf("serve: register batch slot metrics: %w", err)
	}
	return nil
}

// whoIs places p in the queue's order: its priority (the config's entry
// for the key, else the key's stored priority, else the config's entry for
// its tenant by id or name) and its tenant's weight.
func (g *Gateway) whoIs(p billing.Principal) who {
	qo := g.opts.Queue
	w := who{tenant: p.TenantID, tier: 1, weight: 1}
	for i, k := range []string{p.KeyID, p.TenantID, p.TenantName} {
		pr, ok := qo.Priorities[k]
		if i == 1 && p.Priority != "" {
			pr, ok = p.Priority, true // the key's own, over its tenant's
		}
		if ok && k != "" {
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
func (g *Gateway) enqueue(r *http.Request, p billing.Principal, cr *clientRequest, model string, maxWait time.Duration) (*lease, error) {
	if g.router.q == nil {
		return g.router.lease(model, g.unfit(cr, model)), nil
	}
	ctx, w := r.Context(), g.whoIs(p)
	if cr.batchID != "" {
		// A batch line waits in the batch tier, as long as its batch's
		// context allows (batchqueue.go).
		ctx, w = cr.waitCtx, batchWho(w)
	}
	return g.router.acquire(ctx, model, g.unfit(cr, model), w, maxWait)
}

// maxWaitHeader lets a client wait less than queue.maxWait for a slot.
const maxWaitHeader = "X-Llmctl-Max-Wait"

// requestMaxWait reads maxWaitHeader: seconds ("2", "0.5") or a Go
// duration ("500ms"), positive; 0 when absent. Longer than queue.maxWait
// means queue.maxWait.
func requestMaxWait(r *http.Request) (time.Duration, *apiError) {
	v := r.Header.Get(maxWaitHeader)
	if v == "" {
		return 0, nil
	}
	d, err := parseMaxWait(v)
	if err != nil {
		return 0, badRequest("", "the %s header %q: %v", maxWaitHeader, v, err)
	}
	return d, nil
}

func parseMaxWait(v string) (time.Duration, error) {
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(secs) || secs <= 0 || secs > maxWaitCeiling.Seconds() {
			return 0, fmt.Errorf("want seconds above 0 and at most %v", maxWaitCeiling)
		}
		d = time.Duration(secs * float64(time.Second))
	} else if d, err = time.ParseDuration(v); err != nil {
		return 0, errors.New(`want seconds ("2.5") or a duration ("500ms")`)
	}
	if d <= 0 || d > maxWaitCeiling {
		return 0, fmt.Errorf("want a wait above 0 and at most %v", maxWaitCeiling)
	}
	return d, nil
}

// maxWaitCeiling bounds the header; queue.maxWait bounds it further.
const maxWaitCeiling = time.Hour

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
