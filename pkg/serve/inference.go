package serve

// The inference path of design.md: decode, model, admission, reservation,
// forwarding with retries, and the plain answer.

import (
	"context"
	"encoding/json"
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

	// Settling must survive the client going away, so it gets a context
	// without cancellation; used is filled in by forward below.
	settleCtx := context.WithoutCancel(r.Context())
	var used billing.Usage
	// Every choice (n, best_of) may generate maxTokens.
	completion := completionBudget(maxTokens, cr.choices)
	if g.opts.Admitter != nil {
		ticket, err := g.opts.Admitter.Admit(r.Context(), p, model, satAdd(completion, cr.promptEstimate))
		if err != nil {
			g.fail(w, st, g.admitError(r, st, err))
			return
		}
		defer func() { ticket.Done(settleCtx, used) }()
		for k, vs := range ticket.Header() {
			w.Header()[k] = vs
		}
	}
	hold, err := g.reserver.Reserve(r.Context(), billing.ReserveRequest{Principal: p, RequestID: st.id, Model: model,
		PromptTokens: cr.promptEstimate, MaxTokens: completion, EndUser: cr.endUser})
	if err != nil {
		if be, ok := errors.AsType[*billing.BudgetError](err); ok {
			g.fail(w, st, budgetExceeded(be, time.Now()))
			return
		}
		if errors.Is(err, billing.ErrInsufficientQuota) {
			g.fail(w, st, quotaRefusal(err, cr, maxTokens))
			return
		}
		if errors.Is(err, billing.ErrModelNotPriced) {
			g.fail(w, st, &apiError{Status: http.StatusForbidden, Type: typePermission, Code: "model_not_priced", Param: "model",
				Message: fmt.Sprintf("the model %q has no price configured; ask the operator to add one", cr.model)})
			return
		}
		if r.Context().Err() != nil || errors.Is(err, context.Canceled) {
			// The client left while the hold was being written; the ledger
			// releases whatever may have been committed. Not our failure.
			g.fail(w, st, requestEnded(r))
			return
		}
		g.log.Error("ledger reserve", "request_id", st.id, "err", err)
		g.fail(w, st, &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "ledger_unavailable",
			Message: "billing unavailable; try again"})
		return
	}
	// Settled exactly once: a plain answer settles before its bytes go out
	// (so an answer the client holds is a charge journaled on disk); a
	// stream, or a request that failed, when the handler returns.
	settled := false
	settle := func(u billing.Usage) {
		if !settled {
			settled = true
			hold.Settle(settleCtx, u)
		}
	}
	defer func() { settle(used) }()

	used = g.forward(w, r, st, cr, model, settle)
	st.usage = used
	g.metrics.tokens.WithLabelValues(model, "in").Add(float64(used.PromptTokens))
	g.metrics.tokens.WithLabelValues(model, "out").Add(float64(used.CompletionTokens))
}

// forward routes to a backend, retrying on another one while nothing has
// been sent to the client, and returns the usage to settle.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, st *reqState, cr *clientRequest, model string, settle func(billing.Usage)) billing.Usage {
	ubody, err := cr.upstreamBody(model)
	if err != nil {
		g.fail(w, st, badRequest("", "cannot re-encode request: %v", err))
		return billing.Usage{}
	}
	req := &Request{Endpoint: cr.endpoint, Model: model, Body: ubody, Stream: cr.stream, RequestID: st.id}
	tried := g.unfit(cr, model)
	var lastErr error
	for range g.opts.MaxAttempts {
		m := g.router.pick(model, tried)
		if m == nil {
			break
		}
		tried[m] = true
		st.backend = m.name()
		mreq, native := req, cr.native.on(m)
		if native {
			if mreq, err = cr.native.request(model, st.id, cr.stream); err != nil {
				g.router.release(m)
				g.fail(w, st, badRequest("", "cannot re-encode request: %v", err))
				return billing.Usage{}
			}
		}
		resp, err := m.b.Do(r.Context(), mreq)
		if err != nil {
			g.router.release(m)
			lastErr = err
			g.upstreamFailed(m, err)
			if errors.Is(err, ErrRetryable) && r.Context().Err() == nil {
				continue
			}
			break
		}
		if cr.stream && resp.Events == nil {
			// A backend breaking the contract must not crash the request.
			g.router.release(m)
			lastErr = &BackendError{Backend: m.name(), Reason: ReasonStream, Err: errors.New("stream requested, answer has no events")}
			g.upstreamFailed(m, lastErr)
			continue
		}
		g.router.succeeded(m)
		if !cr.stream {
			defer g.router.release(m)
			if native {
				return g.nativePlain(cr, resp, settle)
			}
			return g.plain(w, cr, resp, settle)
		}
		var used billing.Usage
		var cut error
		func() {
			defer g.router.release(m) // also on a panic
			if native {
				used, cut = g.nativeStream(w, r, st, cr, m, resp.Events)
				return
			}
			used, cut = g.stream(w, r, st, cr, m, resp.Events)
		}()
		if cut == nil {
			return used
		}
		// The stream broke before its first event: nothing reached the
		// client yet, so another backend may still answer.
		lastErr = cut
		if r.Context().Err() != nil {
			break
		}
	}
	g.fail(w, st, g.backendAPIError(r, st, model, lastErr))
	return billing.Usage{}
}

// upstreamFailed counts the failure and passively ejects the backend.
func (g *Gateway) upstreamFailed(m *member, err error) {
	var be *BackendError
	reason := ""
	switch {
	case errors.As(err, &be):
		reason = be.Reason
	case errors.Is(err, context.Canceled):
	case errors.Is(err, context.DeadlineExceeded):
		reason = ReasonTimeout
	default:
		reason = ReasonConnect
	}
	if reason == "" {
		return // a passed-through 4xx or the client leaving: not the backend's fault
	}
	g.metrics.upstreamError.WithLabelValues(m.name(), reason).Inc()
	if reason != ReasonStream {
		g.router.failed(m)
	}
}

func (g *Gateway) backendAPIError(r *http.Request, st *reqState, model string, err error) *apiError {
	var be *BackendError
	switch {
	case err == nil:
		st.backend = ""
		return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "no_backend",
			Message: fmt.Sprintf("no healthy backend serves the model %q right now", model)}
	case r.Context().Err() != nil:
		return requestEnded(r)
	case errors.As(err, &be) && be.Reason == "" && be.Status >= 400 && be.Status < 500:
		// The backend rejected the request itself: pass its answer through.
		return &apiError{Status: be.Status, Type: typeInvalidRequest, Code: "upstream_rejected", Message: upstreamMessage(be.Body, be.Status), Param: upstreamParam(be.Body)}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{Status: http.StatusGatewayTimeout, Type: typeServer, Code: "backend_timeout",
			Message: "the backend did not answer in time"}
	default:
		return &apiError{Status: http.StatusBadGateway, Type: typeServer, Code: "backend_error",
			Message: "the backend failed to answer; try again"}
	}
}

// upstreamMessage picks the message out of an upstream OpenAI-shaped error.
func upstreamMessage(body []byte, status int) string {
	var v struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &v) == nil && v.Error.Message != "" {
		return v.Error.Message
	}
	return fmt.Sprintf("the backend rejected the request with status %d", status)
}

// plain settles, then sends the answer. Settling first is what makes a
// non-stream answer safe from a crash: once the client has it, its charge is
// journaled on disk (docs/billing.md). The answer is flushed at once, so the
// access log and metrics that follow do not delay it.
func (g *Gateway) plain(w http.ResponseWriter, cr *clientRequest, resp *Response, settle func(billing.Usage)) billing.Usage {
	used := billing.Usage{PromptTokens: cr.promptEstimate}
	if cr.only == "rerank" {
		resp.Usage = rerankUsage(resp.Body)
	}
	if resp.Usage != nil {
		used = *resp.Usage
	}
	settle(used)
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(resp.Body))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp.Body)
	_ = http.NewResponseController(w).Flush()
	return used
}
