package serve

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve/admin"
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
	logTail [8]slog.Attr // the access log's attributes past a Record's five (accesslog.go)
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
	if isBatchPath(path) {
		return "batch"
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
	inflight := g.metrics.children.inFlight.get(st.route)
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
	c := g.metrics.children.finished.get(finishLabels{route: st.route, model: st.model, backend: st.backend, status: st.status})
	c.requests.Inc()
	c.duration.Observe(d.Seconds())
	lvl := slog.LevelInfo
	if st.route == "other" && st.status < 400 {
		lvl = slog.LevelDebug // probes
	}
	// Never the key, never the body: ids, sizes and outcome only.
	accessLog(r.Context(), g.log, lvl, r.Method, st, rw.bytes, d)
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
	if g.opts.Batches != nil && isBatchPath(path) {
		g.batchAPI(w, r, st)
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
