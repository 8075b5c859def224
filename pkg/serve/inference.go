package serve

// The inference path of design.md: decode, model, admission, reservation,
// forwarding with retries, and the plain answer.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
)

// inference is the one-way request path of design.md.
func (g *Gateway) inference(w http.ResponseWriter, r *http.Request, st *reqState, ep Endpoint) {
	// The key comes from the headers, so it is checked before a byte of the
	// body is read: a caller without a valid key cannot make the gateway
	// wait on or buffer its upload (docs/architecture.md, "Before authentication").
	p, aerr := g.authenticate(r, st)
	if aerr != nil {
		g.refuseUnread(w, st, aerr)
		return
	}
	body, release, aerr := g.readBody(w, r, g.opts.MaxBodyBytes)
	defer release()
	if aerr != nil {
		g.refuseUnread(w, st, aerr)
		return
	}
	cr, aerr := decodeRequest(ep, body)
	if aerr != nil {
		g.fail(w, st, aerr)
		return
	}
	g.run(w, r, st, p, cr)
}

// resolveModel resolves the requested model and checks the key may use it.
func (g *Gateway) resolveModel(st *reqState, p billing.Principal, cr *clientRequest) (string, *apiError) {
	model, known := g.router.resolve(cr.model)
	if !known {
		return "", &apiError{Status: http.StatusNotFound, Type: typeNotFound, Code: "model_not_found", Param: "model",
			Message: fmt.Sprintf("the model %q does not exist", cr.model)}
	}
	st.model = model
	if !p.Allows(cr.model) && !p.Allows(model) {
		return "", &apiError{Status: http.StatusForbidden, Type: typePermission, Code: "model_not_allowed", Param: "model",
			Message: fmt.Sprintf("this API key may not use the model %q", cr.model)}
	}
	return model, nil
}

// run is the path of a decoded request, whichever protocol it came in:
// admission, reservation, forwarding and settling.
func (g *Gateway) run(w http.ResponseWriter, r *http.Request, st *reqState, p billing.Principal, cr *clientRequest) {
	if cr.maxTokens > g.opts.MaxTokensCeiling {
		g.fail(w, st, badRequest(cr.maxTokensField, "%s is %d, above the largest this gateway admits (%d)",
			cr.maxTokensField, cr.maxTokens, g.opts.MaxTokensCeiling))
		return
	}
	model, aerr := g.resolveModel(st, p, cr)
	if aerr == nil && cr.only != "" && len(g.router.speakers(model, cr.only)) == 0 {
		aerr = &apiError{Status: http.StatusNotFound, Type: typeNotFound, Code: "model_not_found", Param: "model",
			Message: fmt.Sprintf("the model %q has no backend that serves %s; the operator lists %s in a backend's protocols", cr.model, cr.only, cr.only)}
	}
	if aerr != nil {
		g.fail(w, st, aerr)
		return
	}
	maxTokens := cr.maxTokens
	if maxTokens == 0 && cr.endpoint.generates() {
		maxTokens = g.opts.DefaultMaxTokens
	}

	// A request waits for a backend slot before it is admitted: the
	// limiter slot and the hold are taken only once it has one. The
	// fallbacks of the model (fallback.go) follow when it has none.
	chain := g.fallbackChain(p, model)
	i, first, aerr := g.choose(r, p, cr, chain)
	if aerr != nil {
		g.fail(w, st, aerr)
		return
	}
	defer func() {
		if first != nil {
			first.done(nil) // not used: refused before forwarding
		}
	}()
	if i > 0 {
		g.fellBack(w, st, model, chain[i])
	}
	model = chain[i]
	// Every choice (n, best_of) may generate maxTokens.
	completion := completionBudget(maxTokens, cr.choices)
	// One settlement from admission on: forward charges it (a plain answer
	// before its bytes go out), finish settles what is left when the
	// handler returns, on every path, a panic included.
	admit := g.admit
	if cr.batchID != "" {
		admit = g.admitLine(cr) // batch lines have their own limits (batchlimit.go)
	}
	s, aerr := admit(w, r, st, p, model, satAdd(completion, cr.promptEstimate))
	if aerr != nil {
		g.fail(w, st, aerr)
		return
	}
	var used billing.Usage
	defer func() { s.finish(used) }()
	reserve := func(model string) bool {
		hold, err := g.reserver.Reserve(r.Context(), billing.ReserveRequest{Principal: p, RequestID: st.id, Model: model,
			PromptTokens: cr.promptEstimate, MaxTokens: completion, EndUser: cr.endUser, BatchID: cr.batchID})
		if err != nil {
			g.fail(w, st, g.reserveError(r, st, cr, maxTokens, err))
			return false
		}
		s.reserved(hold)
		return true
	}
	if !reserve(model) {
		return
	}
	longer := g.contextChain(p, model)
	for {
		l := first
		first = nil
		var next nextModel
		used, next = g.forward(w, r, st, cr, model, l, s, onward{fallback: i+1 < len(chain), longer: len(longer) > 0})
		switch next {
		case nextNone:
		case nextFallback:
			// Every backend of the model failed before the first byte: the
			// next model answers, charged at its own price.
			i++
			g.fellBack(w, st, model, chain[i])
			model = chain[i]
		case nextLonger:
			// The prompt does not fit: a longer-context model answers, at
			// its own price, through the queue as any request.
			var aerr *apiError
			if _, first, aerr = g.choose(r, p, cr, longer[:1]); aerr != nil {
				g.fail(w, st, aerr)
				return
			}
			g.fellBack(w, st, model, longer[0])
			model, longer, chain, i = longer[0], longer[1:], longer[:1], 0
		}
		if next == nextNone || !reserve(model) {
			break
		}
	}
	st.usage = used
	g.tokenMetrics(model, used)
}

// tokenMetrics adds a request's usage to llmctl_tokens_total.
func (g *Gateway) tokenMetrics(model string, used billing.Usage) {
	c := g.metrics.children.tokens.get(model)
	c[0].Add(float64(used.PromptTokens))
	c[1].Add(float64(used.CompletionTokens))
}

// admit applies the rate limits (when there is an Admitter) and starts the
// request's settlement; the ticket's headers go on the answer.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request, st *reqState, p billing.Principal, model string, tokens int64) (*settlement, *apiError) {
	if g.opts.Admitter == nil {
		return newSettlement(r.Context(), nil), nil
	}
	ticket, err := g.opts.Admitter.Admit(r.Context(), p, model, tokens)
	if err != nil {
		return nil, g.admitError(r, st, err)
	}
	for k, vs := range ticket.Header() {
		w.Header()[k] = vs
	}
	return newSettlement(r.Context(), ticket), nil
}

// reserveError answers a failed reservation.
func (g *Gateway) reserveError(r *http.Request, st *reqState, cr *clientRequest, maxTokens int64, err error) *apiError {
	if be, ok := errors.AsType[*billing.BudgetError](err); ok {
		return budgetExceeded(be, time.Now())
	}
	if errors.Is(err, billing.ErrInsufficientQuota) {
		return quotaRefusal(err, cr, maxTokens)
	}
	if errors.Is(err, billing.ErrModelNotPriced) {
		return &apiError{Status: http.StatusForbidden, Type: typePermission, Code: "model_not_priced", Param: "model",
			Message: fmt.Sprintf("the model %q has no price configured; ask the operator to add one", cr.model)}
	}
	if r.Context().Err() != nil || errors.Is(err, context.Canceled) {
		// The client left while the hold was being written; the ledger
		// releases whatever may have been committed. Not our failure.
		return requestEnded(r)
	}
	g.log.Error("ledger reserve", "request_id", st.id, "err", err)
	return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "ledger_unavailable",
		Message: "billing unavailable; try again"}
}

// forward routes to a backend, retrying on another one while nothing has
// been sent to the client, and returns the usage to settle. Each backend
// tried is a lease from the router, ended once with how it went.
//
// When more.fallback is set (a fallback model remains) and every backend
// failed before anything was sent, the client's own error aside, forward
// answers nothing and reports nextFallback: the caller tries the fallback.
// When more.longer is set and a backend refused the prompt as longer than
// its context, forward answers nothing and reports nextLonger.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, st *reqState, cr *clientRequest, model string, first *lease, s *settlement, more onward) (used billing.Usage, next nextModel) {
	ubody, err := cr.upstreamBody(model)
	if err != nil {
		if first != nil {
			first.done(nil)
		}
		g.fail(w, st, badRequest("", "cannot re-encode request: %v", err))
		return billing.Usage{}, nextNone
	}
	req := &Request{Endpoint: cr.endpoint, Model: model, Body: ubody, Stream: cr.stream, RequestID: st.id}
	tried := g.unfit(cr, model)
	var lastErr error
	for range g.opts.MaxAttempts {
		l := first // the queue's, for the first attempt
		if first = nil; l == nil {
			l = g.router.lease(model, tried)
		}
		if l == nil {
			break
		}
		tried[l.m] = true
		used, fault, retry := g.attempt(w, r, st, cr, req, l, s, more)
		if !retry {
			return used, nextNone
		}
		if more.longer && contextExceeded(fault) {
			return billing.Usage{}, nextLonger
		}
		lastErr = fault
		if r.Context().Err() != nil {
			break
		}
	}
	if more.fallback && r.Context().Err() == nil && (lastErr == nil || classify(lastErr).fallback) {
		return billing.Usage{}, nextFallback
	}
	if lastErr == nil {
		st.backend = ""
	}
	g.fail(w, st, g.backendAPIError(r, model, lastErr))
	return billing.Usage{}, nextNone
}

// attempt sends the request to the leased backend and ends the lease, also
// on a panic. retry tells forward that nothing was sent to the client and
// another backend may answer (fault is why); otherwise the answer, or an
// error answer, went out and used is what to charge.
//
// With more.fallback (a fallback model remains), a failure that a fallback
// may answer is left unanswered too (retry) for forward to decide; with
// more.longer, so is a refusal of the prompt as too long for the context.
func (g *Gateway) attempt(w http.ResponseWriter, r *http.Request, st *reqState, cr *clientRequest, req *Request, l *lease, s *settlement, more onward) (used billing.Usage, fault error, retry bool) {
	defer func() { l.done(fault) }()
	st.backend = l.name()
	mreq, native := req, cr.native.on(l.m)
	if native {
		var err error
		if mreq, err = cr.native.request(req.Model, st.id, cr.stream); err != nil {
			g.fail(w, st, badRequest("", "cannot re-encode request: %v", err))
			return billing.Usage{}, nil, false
		}
	}
	resp, err := l.m.b.Do(r.Context(), mreq)
	if err != nil {
		if v := classify(err); (v.retry || more.fallback && v.fallback || more.longer && contextExceeded(err)) && r.Context().Err() == nil {
			return billing.Usage{}, err, true
		}
		g.fail(w, st, g.backendAPIError(r, req.Model, err))
		return billing.Usage{}, err, false
	}
	if cr.stream && resp.Events == nil {
		// A backend breaking the contract must not crash the request.
		return billing.Usage{}, &BackendError{Backend: l.name(), Reason: ReasonStream, Err: errors.New("stream requested, answer has no events")}, true
	}
	l.answered()
	if !cr.stream {
		if native {
			return g.nativePlain(cr, resp, s), nil, false
		}
		return g.plain(w, cr, resp, s), nil, false
	}
	var b streamBreak
	if native {
		used, b = g.nativeStream(w, r, st, cr, l, resp.Events)
	} else {
		used, b = g.stream(w, r, st, cr, l, resp.Events)
	}
	return used, b.fault, b.retry
}

// backendAPIError is the answer when forwarding failed with err (nil: no
// backend could be tried).
func (g *Gateway) backendAPIError(r *http.Request, model string, err error) *apiError {
	switch {
	case err == nil:
		return noBackend(model)
	case r.Context().Err() != nil:
		return requestEnded(r)
	default:
		return classify(err).answer
	}
}

// plain settles, then sends the answer. Settling first is what makes a
// non-stream answer safe from a crash: once the client has it, its charge is
// journaled on disk (docs/billing.md). The answer is flushed at once, so the
// access log and metrics that follow do not delay it.
func (g *Gateway) plain(w http.ResponseWriter, cr *clientRequest, resp *Response, s *settlement) billing.Usage {
	used := billing.Usage{PromptTokens: cr.promptEstimate}
	if cr.only == "rerank" {
		resp.Usage = rerankUsage(resp.Body)
	}
	if resp.Usage != nil {
		used = *resp.Usage
	}
	s.charge(used)
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(resp.Body))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp.Body)
	_ = http.NewResponseController(w).Flush()
	return used
}
