package serve

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve/admin"
	"github.com/llmctl/llmctl/pkg/serve/protocol"
)

// statusClientClosed is logged (never sent) when the client went away first.
const statusClientClosed = 499

// reqState is what the access log and metrics learn about one request as it
// moves along the path.
type reqState struct {
	id      string
	route   string
	model   string // resolved backend model, "" until known to exist
	backend string
	status  int
	tenant  string
	keyID   string
	usage   billing.Usage
	start   time.Time
}

// respWriter records the status and whether anything reached the client.
type respWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *respWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func routeOf(path string) string {
	switch path {
	case "/v1/chat/completions":
		return "chat"
	case "/v1/completions":
		return "completions"
	case "/v1/embeddings":
		return "embeddings"
	case "/v1/rerank", "/v1/score":
		return "rerank"
	case "/v1/me", "/v1/me/redeem":
		return "me" // logged at info like the API, not as a probe
	}
	if path == "/v1/models" || strings.HasPrefix(path, "/v1/models/") {
		return "models"
	}
	if strings.HasPrefix(path, admin.Prefix) {
		return "admin"
	}
	return "other"
}

// requestID takes a sane client X-Request-Id or makes one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 128 {
		ok := true
		for i := 0; i < len(id); i++ {
			if c := id[i]; c <= ' ' || c >= 0x7f {
				ok = false
				break
			}
		}
		if ok {
			return id
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ServeHTTP is the public API: request id, metrics, access log and panic
// safety around the routes.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.serve(w, r, g.route) }

// serve wraps one listener's routes (route, or the admin listener's admin API).
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, route func(http.ResponseWriter, *http.Request, *reqState)) {
	st := &reqState{id: requestID(r), route: g.routeOf(r.URL.Path), start: time.Now()}
	w.Header().Set("X-Request-Id", st.id)
	rw := &respWriter{ResponseWriter: w}
	r, stop := g.withShutdown(r)
	defer stop()
	inflight := g.metrics.inFlight.WithLabelValues(st.route)
	inflight.Inc()
	defer func() {
		p := recover()
		if p != nil && p != http.ErrAbortHandler {
			g.log.Error("panic serving request", "request_id", st.id, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if rw.status == 0 {
				writeAPIError(rw, &apiError{Status: http.StatusInternalServerError, Type: typeServer,
					Code: "internal_error", Message: "internal error"})
			}
			st.status = http.StatusInternalServerError
		}
		inflight.Dec()
		g.finish(r, rw, st)
		if p == http.ErrAbortHandler {
			panic(p)
		}
	}()
	route(rw, r, st)
}

func (g *Gateway) finish(r *http.Request, rw *respWriter, st *reqState) {
	if st.status == 0 {
		st.status = rw.status
	}
	if st.status == 0 {
		st.status = http.StatusOK
	}
	d := time.Since(st.start)
	g.metrics.requests.WithLabelValues(st.route, st.model, strconv.Itoa(st.status), st.backend).Inc()
	g.metrics.duration.WithLabelValues(st.route, st.model).Observe(d.Seconds())
	lvl := slog.LevelInfo
	if st.route == "other" && st.status < 400 {
		lvl = slog.LevelDebug // probes
	}
	// Never the key, never the body: ids, sizes and outcome only.
	g.log.LogAttrs(r.Context(), lvl, "request",
		slog.String("request_id", st.id), slog.String("method", r.Method), slog.String("route", st.route),
		slog.String("model", st.model), slog.Int("status", st.status), slog.String("backend", st.backend),
		slog.String("tenant", st.tenant), slog.String("key_id", st.keyID),
		slog.Int64("prompt_tokens", st.usage.PromptTokens), slog.Int64("completion_tokens", st.usage.CompletionTokens),
		slog.Int64("bytes", rw.bytes), slog.Duration("duration", d))
}

func (g *Gateway) route(w http.ResponseWriter, r *http.Request, st *reqState) {
	path := r.URL.Path
	if strings.HasPrefix(path, "/v1/billing/webhooks/") && g.webhooks != nil {
		// Webhooks authenticate by a signature over the body, so their body
		// is read first, but under the same deadline and budget as any.
		body, release, aerr := g.readBody(w, r, g.opts.WebhookMaxBodyBytes)
		defer release()
		if aerr != nil {
			g.refuseUnread(w, st, aerr)
			return
		}
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		g.webhooks.ServeHTTP(w, r)
		return
	}
	if strings.HasPrefix(path, admin.Prefix) && g.adminOn(AdminAPIOnAPI) {
		g.adminAPI(w, r, st)
		return
	}
	var ep Endpoint
	switch path {
	case "/healthz":
		_, _ = w.Write([]byte("ok\n"))
		return
	case "/readyz":
		g.readyz(w, r)
		return
	case "/v1/me":
		if r.Method != http.MethodGet {
			g.fail(w, st, methodNotAllowed(r.Method, http.MethodGet))
			return
		}
		g.me(w, r, st)
		return
	case "/v1/me/redeem":
		if r.Method != http.MethodPost {
			g.fail(w, st, methodNotAllowed(r.Method, http.MethodPost))
			return
		}
		g.redeem(w, r, st)
		return
	case "/v1/chat/completions":
		ep = EndpointChat
	case "/v1/completions":
		ep = EndpointCompletions
	case "/v1/embeddings":
		ep = EndpointEmbeddings
	case "/v1/rerank":
		ep = EndpointRerank
	case "/v1/score":
		ep = EndpointScore
	default:
		if a, ok := g.protocols[path]; ok {
			g.protocol(w, r, st, a)
			return
		}
		if st.route == "models" {
			if r.Method != http.MethodGet {
				g.fail(w, st, methodNotAllowed(r.Method, http.MethodGet))
				return
			}
			g.models(w, r, st, strings.TrimPrefix(strings.TrimPrefix(path, "/v1/models"), "/"))
			return
		}
		g.fail(w, st, &apiError{Status: http.StatusNotFound, Type: typeInvalidRequest, Code: "unknown_url",
			Message: fmt.Sprintf("unknown URL: %s %s", r.Method, path)})
		return
	}
	if r.Method != http.MethodPost {
		g.fail(w, st, methodNotAllowed(r.Method, http.MethodPost))
		return
	}
	g.inference(w, r, st, ep)
}

func clientClosed() *apiError {
	return &apiError{Status: statusClientClosed, Type: typeServer, Code: "client_closed", Message: "client closed the request"}
}

// satAdd adds two non-negative token counts, saturating instead of wrapping:
// a wrapped sum would reach the limiter and the ledger as a small number.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func methodNotAllowed(got, want string) *apiError {
	return &apiError{Status: http.StatusMethodNotAllowed, Type: typeInvalidRequest, Code: "method_not_allowed",
		Message: fmt.Sprintf("method %s not allowed; use %s", got, want), Header: http.Header{"Allow": {want}}}
}

func (g *Gateway) fail(w http.ResponseWriter, st *reqState, e *apiError) {
	st.status = e.Status
	writeAPIError(w, e)
}

func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	if g.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		err := g.opts.Ready(ctx)
		cancel()
		if err != nil {
			http.Error(w, "store unreachable", http.StatusServiceUnavailable)
			return
		}
	}
	if g.router.healthyCount() == 0 {
		http.Error(w, "no healthy backend", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// authenticate checks the bearer key. Bad keys are 401; a store failure 503.
func (g *Gateway) authenticate(r *http.Request, st *reqState) (billing.Principal, *apiError) {
	return g.authenticateKey(r, st, protocol.BearerKey(r.Header))
}

// authenticateKey checks key, read from the headers by the route's rules.
func (g *Gateway) authenticateKey(r *http.Request, st *reqState, key string) (billing.Principal, *apiError) {
	if key == "" {
		return billing.Principal{}, &apiError{Status: http.StatusUnauthorized, Type: typeAuthentication,
			Code: "invalid_api_key", Message: "missing API key: send Authorization: Bearer sk-llm-..."}
	}
	p, err := g.opts.Auth.Authenticate(r.Context(), key)
	if err != nil {
		msg := ""
		switch {
		case errors.Is(err, billing.ErrRevoked):
			msg = "API key revoked"
		case errors.Is(err, billing.ErrExpired):
			msg = "API key expired"
		case errors.Is(err, billing.ErrSuspended): // before ErrInvalidKey, which it also matches
			msg = "this API key's account is suspended; ask the operator"
		case errors.Is(err, billing.ErrInvalidKey):
			msg = "invalid API key"
		default:
			g.log.Error("authenticate", "request_id", st.id, "err", err)
			return billing.Principal{}, &apiError{Status: http.StatusServiceUnavailable, Type: typeServer,
				Code: "auth_unavailable", Message: "could not verify the API key; try again"}
		}
		return billing.Principal{}, &apiError{Status: http.StatusUnauthorized, Type: typeAuthentication,
			Code: "invalid_api_key", Message: msg}
	}
	st.tenant, st.keyID = p.TenantID, p.KeyID
	return p, nil
}

// adminAPI checks the caller like inference does (key from the headers
// before any body byte is read; then its role; then the rate limits on the
// key's and tenant's buckets, model "admin") and hands the read body to the
// admin handler with the caller in the context.
func (g *Gateway) adminAPI(w http.ResponseWriter, r *http.Request, st *reqState) {
	p, aerr := g.authenticate(r, st)
	if aerr == nil && !p.IsAdmin() {
		aerr = &apiError{Status: http.StatusForbidden, Type: typePermission, Code: "permission_denied",
			Message: "this API key may not use the admin API; use an admin key"}
	}
	if aerr != nil {
		g.refuseUnread(w, st, aerr)
		return
	}
	if g.opts.Admitter != nil {
		ticket, err := g.opts.Admitter.Admit(r.Context(), p, "admin", 0)
		if err != nil {
			g.refuseUnread(w, st, g.admitError(r, st, err))
			return
		}
		defer ticket.Done(context.WithoutCancel(r.Context()), billing.Usage{})
		for k, vs := range ticket.Header() {
			w.Header()[k] = vs
		}
	}
	body, release, aerr := g.readBody(w, r, g.opts.MaxBodyBytes)
	defer release()
	if aerr != nil {
		g.refuseUnread(w, st, aerr)
		return
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	// The handler's audit records carry the request id this response has.
	r.Header.Set("X-Request-Id", st.id)
	g.opts.Admin.ServeHTTP(w, r.WithContext(admin.WithCaller(r.Context(), p)))
}

// admitError answers a refusal or failure of the Admitter.
func (g *Gateway) admitError(r *http.Request, st *reqState, err error) *apiError {
	var le *billing.LimitError
	if errors.As(err, &le) {
		h := le.Header.Clone()
		if h == nil {
			h = http.Header{}
		}
		if le.TooLarge {
			// Never admissible: a non-retryable 400 (official clients
			// retry every 429), with no Retry-After to wait for.
			return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest,
				Code: "request_too_large", Param: "max_tokens", Message: le.Message, Header: h}
		}
		secs := int64((le.RetryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
		return &apiError{Status: http.StatusTooManyRequests, Type: typeRateLimit,
			Code: "rate_limit_exceeded", Message: le.Message, Header: h}
	}
	if r.Context().Err() != nil {
		return requestEnded(r)
	}
	g.log.Error("rate limiter", "request_id", st.id, "err", err)
	return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "limiter_unavailable",
		Message: "rate limiter unavailable; try again"}
}

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
		return &apiError{Status: be.Status, Type: typeInvalidRequest, Code: "upstream_rejected", Message: upstreamMessage(be.Body, be.Status)}
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

// streamEvent is the part of a chunk the gateway looks at.
type streamEvent struct {
	Choices []struct {
		Text  string `json:"text"`
		Delta struct {
			Content   string          `json:"content"`
			Reasoning string          `json:"reasoning_content"`
			ToolCalls json.RawMessage `json:"tool_calls"`
		} `json:"delta"`
	} `json:"choices"`
	Usage *billing.Usage `json:"usage"`
}

var (
	sseData = []byte("data: ")
	sseEnd  = []byte("\n\n")
	sseDone = []byte("data: [DONE]\n\n")
)

// stream passes events through one by one, flushing each. Headers go out
// with the first event, so a stream that breaks before it returns the error
// (nothing written) and forward tries another backend. Usage is upstream's
// when reported, else counted: one token per content event.
func (g *Gateway) stream(w http.ResponseWriter, r *http.Request, st *reqState, cr *clientRequest, m *member, s Stream) (billing.Usage, error) {
	defer s.Close() // cancels upstream work when the client left early
	rc := http.NewResponseController(w)
	var (
		counted     int64
		started     bool
		first, last time.Time
		done        bool
		buf         []byte // reused: the writer copies what it is given
	)
	// Events already received from upstream are written together and
	// flushed once: a flush happens whenever the next event is not yet in
	// memory, so nothing ever waits on upstream unflushed, and a burst costs
	// one write instead of one per event. Backends that cannot tell flush
	// every event.
	var ahead func() bool
	if b, ok := s.(interface{ Buffered() bool }); ok {
		ahead = b.Buffered
	}
	pending := false // written, not flushed
	ttft := g.metrics.ttft.WithLabelValues(st.model)
	itl := g.metrics.itl.WithLabelValues(st.model)
	start := func() {
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		started = true
	}
	for {
		if pending && (ahead == nil || !ahead()) {
			if err := rc.Flush(); err != nil {
				st.status = statusClientClosed
				break
			}
			pending = false
		}
		data, err := s.Next()
		if errors.Is(err, io.EOF) {
			done = true
			break
		}
		if err != nil {
			used, retry, over, end := g.streamFailed(w, r, st, cr, m, started, err)
			if over {
				return used, retry
			}
			if end != nil {
				// Past the first byte no retry: end with an error event.
				g.endStream(w, st, true, end)
			}
			break
		}
		content, usageOnly := inspectEvent(data)
		if usageOnly && !cr.includeUsage {
			continue // the usage chunk we asked for on the client's behalf
		}
		if !started {
			start()
		}
		buf = append(append(append(buf[:0], sseData...), data...), sseEnd...)
		if _, err := w.Write(buf); err != nil {
			st.status = statusClientClosed
			break
		}
		pending = true
		if content {
			counted++
			now := time.Now()
			if first.IsZero() {
				first = now
				ttft.Observe(now.Sub(st.start).Seconds())
			} else {
				itl.Observe(now.Sub(last).Seconds())
			}
			last = now
		}
	}
	if done {
		if !started {
			start()
		}
		// Every event goes out before settling (which may wait on a disk);
		// [DONE] is not flushed here: it leaves with the end of the chunked
		// body when the handler returns, after settling, in one write. So
		// the stream is complete for the client only once its charge is
		// journaled.
		if pending {
			_ = rc.Flush()
		}
		_, _ = w.Write(sseDone)
	}
	if u := s.Usage(); u != nil {
		return *u, nil
	}
	return billing.Usage{PromptTokens: cr.promptEstimate, CompletionTokens: counted}, nil
}

// endStream ends a stream with e: an error event when events went out
// (the edge turns it into its protocol's error event), else the error
// answer; the access log records e's status.
func (g *Gateway) endStream(w http.ResponseWriter, st *reqState, started bool, e *apiError) {
	if !started {
		g.fail(w, st, e)
		return
	}
	_, _ = w.Write(append(append(append([]byte(nil), sseData...), e.Body()...), sseEnd...))
	_ = http.NewResponseController(w).Flush()
	st.status = e.Status
}

// streamFailed handles a stream's error. When the stream never started,
// over is true and the stream's result is (used, retry): retry, the error,
// when nothing was sent and another backend may answer, else the error
// answer was sent. Otherwise the caller ends the stream with end, as its
// protocol's error event (server_shutdown when the grace period ended,
// backend_error when the backend broke off), or silently when end is nil
// (the client left).
func (g *Gateway) streamFailed(w http.ResponseWriter, r *http.Request, st *reqState, cr *clientRequest, m *member, started bool, err error) (used billing.Usage, retry error, over bool, end *apiError) {
	if shuttingDown(r) {
		e := serverShutdown()
		if !started {
			g.fail(w, st, e)
			return billing.Usage{PromptTokens: cr.promptEstimate}, nil, true, nil
		}
		st.status = e.Status
		return billing.Usage{}, nil, false, e
	}
	if r.Context().Err() != nil {
		st.status = statusClientClosed
		return billing.Usage{}, nil, false, nil
	}
	g.upstreamFailed(m, err)
	g.log.Warn("stream broke", "request_id", st.id, "backend", m.name(), "err", err)
	if started {
		st.status = http.StatusBadGateway
		return billing.Usage{}, nil, false, &apiError{Status: http.StatusBadGateway, Type: typeServer, Code: "backend_error",
			Message: "the backend stream broke off"}
	}
	var be *BackendError
	if !errors.As(err, &be) || be.Reason == ReasonStream {
		return billing.Usage{}, err, true, nil // nothing sent: the caller may retry
	}
	g.fail(w, st, g.backendAPIError(r, st, st.model, err))
	return billing.Usage{PromptTokens: cr.promptEstimate}, nil, true, nil
}

// inspectEvent tells whether a chunk carries generated content and whether
// it is the usage-only chunk (no choices, usage set). It scans bytes instead
// of decoding every event; only the rare chunk mentioning "usage" is decoded.
func inspectEvent(data []byte) (content, usageOnly bool) {
	if bytes.Contains(data, []byte(`"usage"`)) {
		var ev streamEvent
		if json.Unmarshal(data, &ev) != nil {
			return false, false
		}
		if ev.Usage != nil && len(ev.Choices) == 0 {
			return false, true
		}
		for _, c := range ev.Choices {
			if c.Text != "" || c.Delta.Content != "" || c.Delta.Reasoning != "" || len(c.Delta.ToolCalls) > 0 {
				return true, false
			}
		}
		return false, false
	}
	return nonEmptyString(data, `"content"`) || nonEmptyString(data, `"text"`) ||
		nonEmptyString(data, `"reasoning_content"`) || bytes.Contains(data, []byte(`"tool_calls"`)), false
}

// nonEmptyString reports whether key is followed by a non-empty JSON string.
func nonEmptyString(data []byte, key string) bool {
	for {
		i := bytes.Index(data, []byte(key))
		if i < 0 {
			return false
		}
		data = data[i+len(key):]
		j := 0
		for j < len(data) && (data[j] == ' ' || data[j] == '\t' || data[j] == '\n' || data[j] == '\r') {
			j++
		}
		if j < len(data) && data[j] == ':' {
			j++
			for j < len(data) && (data[j] == ' ' || data[j] == '\t' || data[j] == '\n' || data[j] == '\r') {
				j++
			}
			if j+1 < len(data) && data[j] == '"' && data[j+1] != '"' {
				return true
			}
		}
	}
}

// models lists (or, with id, shows) the models the key may use.
func (g *Gateway) models(w http.ResponseWriter, r *http.Request, st *reqState, id string) {
	p, aerr := g.authenticate(r, st)
	if aerr != nil {
		g.fail(w, st, aerr)
		return
	}
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	all := g.router.models()
	var list []model
	for name, owners := range all {
		resolved, _ := g.router.resolve(name)
		if !p.Allows(name) && !p.Allows(resolved) {
			continue
		}
		list = append(list, model{ID: name, Object: "model", OwnedBy: strings.Join(owners, ",")})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	w.Header().Set("Content-Type", "application/json")
	if id != "" {
		for _, m := range list {
			if m.ID == id {
				_ = json.NewEncoder(w).Encode(m)
				return
			}
		}
		g.fail(w, st, &apiError{Status: http.StatusNotFound, Type: typeNotFound, Code: "model_not_found",
			Message: fmt.Sprintf("the model %q does not exist", id)})
		return
	}
	if list == nil {
		list = []model{}
	}
	_ = json.NewEncoder(w).Encode(struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{"list", list})
}

// me is GET /v1/me: what the caller's key is and may do, and, with a
// ledger, its tenant's balance and spend. Authenticated like /v1/models and,
// like it, not counted by the rate limiter: asking about the quota must
// work while the quota is spent.
func (g *Gateway) me(w http.ResponseWriter, r *http.Request, st *reqState) {
	p, aerr := g.authenticate(r, st)
	if aerr != nil {
		g.fail(w, st, aerr)
		return
	}
	type limitsJSON struct {
		RPM            int64 `json:"rpm"`
		TPM            int64 `json:"tpm"`
		MaxConcurrency int64 `json:"max_concurrency"`
	}
	type spendJSON struct {
		Amount       string `json:"amount"`
		AmountMicros int64  `json:"amount_micros"`
		Requests     int64  `json:"requests"`
	}
	type billingJSON struct {
		admin.BalanceJSON
		Spend24h spendJSON `json:"spend_24h"`
		Spend30d spendJSON `json:"spend_30d"`
		// The tenant's own budgets and the calling key's.
		Budgets []admin.BudgetJSON `json:"budgets"`
	}
	lim := func(l billing.Limits) limitsJSON { return limitsJSON{l.RPM, l.TPM, l.MaxConcurrency} }
	models := p.Models
	if models == nil {
		models = []string{}
	}
	out := struct {
		Object    string     `json:"object"`
		Tenant    string     `json:"tenant"`
		TenantID  string     `json:"tenant_id"`
		KeyID     string     `json:"key_id"`
		Role      string     `json:"role"`
		Models    []string   `json:"models"`
		ExpiresAt *time.Time `json:"expires_at"`
		// 0 = no limit of this kind stored on the key or tenant.
		Limits struct {
			Key    limitsJSON `json:"key"`
			Tenant limitsJSON `json:"tenant"`
		} `json:"limits"`
		Billing        *billingJSON `json:"billing"`
		BillingMessage string       `json:"billing_message,omitempty"`
	}{Object: "me", Tenant: p.TenantName, TenantID: p.TenantID, KeyID: p.KeyID, Role: string(p.Role),
		Models: models, ExpiresAt: p.ExpiresAt}
	if out.Role == "" {
		out.Role = string(billing.RoleUser)
	}
	out.Limits.Key, out.Limits.Tenant = lim(p.KeyLimits), lim(p.TenantLimits)
	if g.opts.Ledger == nil {
		out.BillingMessage = admin.BillingDisabled
	} else {
		a, err := g.opts.Ledger.Account(r.Context(), p.TenantID)
		var spend []ledger.Spend
		if err == nil {
			// One aggregate over this tenant's entries: the 30-day window,
			// of which the last 24 h is the recent part.
			now := time.Now()
			spend, err = g.opts.Ledger.Spend(r.Context(), ledger.SpendWindow{Since: now.Add(-30 * 24 * time.Hour), Recent: now.Add(-24 * time.Hour), Until: now, TenantID: p.TenantID})
		}
		var budgets []admin.BudgetJSON
		if err == nil {
			budgets, err = g.meBudgets(r.Context(), p)
		}
		if err != nil {
			if r.Context().Err() != nil {
				g.fail(w, st, clientClosed())
				return
			}
			g.log.Error("me: ledger", "request_id", st.id, "err", err)
			g.fail(w, st, &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "ledger_unavailable",
				Message: "the ledger could not be read; try again"})
			return
		}
		b := &billingJSON{BalanceJSON: admin.BalanceOut(a), Budgets: budgets}
		for _, s := range spend {
			if s.TenantID == p.TenantID {
				b.Spend24h = spendJSON{s.RecentAmount.String(), int64(s.RecentAmount), s.RecentRequests}
				b.Spend30d = spendJSON{s.Amount.String(), int64(s.Amount), s.Requests}
			}
		}
		if b.Spend24h.Amount == "" {
			zero := spendJSON{Amount: ledger.Micros(0).String()}
			b.Spend24h, b.Spend30d = zero, zero
		}
		out.Billing = b
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
