package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve/protocol"
	"github.com/llmctl/llmctl/pkg/serve/protocol/anthropic"
	"github.com/llmctl/llmctl/pkg/serve/protocol/responses"
)

// The edge: client protocols other than OpenAI's chat, completions and
// embeddings are served by translation (package protocol). A protocol
// route decodes its body into one chat completions request and runs the
// chat path (run) unchanged, through an edgeWriter that translates what
// that path writes (a JSON answer, an OpenAI error, or an SSE stream) into
// the protocol's answer. Auth, scopes, limits, reserve/settle, routing,
// metrics and the access log therefore behave exactly as on
// /v1/chat/completions. docs/protocols.md has the user's view.

// builtinProtocols are the protocols every gateway serves.
func builtinProtocols() []protocol.Adapter {
	return []protocol.Adapter{responses.Adapter{}, anthropic.Adapter{}}
}

// protocolRoutes indexes the built-in and extra adapters by path.
func protocolRoutes(extra []protocol.Adapter) (map[string]protocol.Adapter, error) {
	routes := map[string]protocol.Adapter{}
	for _, a := range append(builtinProtocols(), extra...) {
		for _, p := range a.Paths() {
			if routeOf(p) != "other" {
				return nil, fmt.Errorf("serve: protocol %s: path %s is an OpenAI route", a.Route(), p)
			}
			if _, dup := routes[p]; dup {
				return nil, fmt.Errorf("serve: protocol %s: path %s served twice", a.Route(), p)
			}
			routes[p] = a
		}
	}
	return routes, nil
}

// routeOf is the route label of path, protocol routes included.
func (g *Gateway) routeOf(path string) string {
	if a, ok := g.protocols[path]; ok {
		return a.Route()
	}
	return routeOf(path)
}

// protocol serves one request of a translated protocol.
func (g *Gateway) protocol(w http.ResponseWriter, r *http.Request, st *reqState, a protocol.Adapter) {
	ew := &edgeWriter{w: w, ex: a.New(r.URL.Path)}
	defer ew.close()
	if r.Method != http.MethodPost {
		g.fail(ew, st, methodNotAllowed(r.Method, http.MethodPost))
		return
	}
	p, aerr := g.authenticateKey(r, st, a.APIKey(r.Header))
	if aerr != nil {
		g.refuseUnread(ew, st, aerr)
		return
	}
	body, release, aerr := g.readBody(ew, r, g.opts.MaxBodyBytes)
	defer release()
	if aerr != nil {
		g.refuseUnread(ew, st, aerr)
		return
	}
	req, aerr := ew.ex.Decode(body)
	if aerr != nil {
		g.fail(ew, st, aerr)
		return
	}
	cr, aerr := decodeRequest(EndpointChat, req.Chat)
	if aerr != nil {
		g.fail(ew, st, aerr)
		return
	}
	// The translation needs the usage chunk (the protocols' final events
	// carry usage), so it is kept in the stream the edgeWriter reads.
	cr.includeUsage = cr.stream
	if n, ok := a.(protocol.Native); ok && !req.CountTokens {
		// A backend declaring this protocol gets the client's body instead
		// (native.go); the path is the backend's too.
		cr.native = &nativeCall{protocol: a.Route(), endpoint: Endpoint(strings.TrimPrefix(r.URL.Path, "/v1/")),
			adapter: n, body: body, out: ew.w}
		ew.native = cr.native
	}
	if req.CountTokens {
		g.countTokens(ew, r, st, p, cr)
		return
	}
	g.run(ew, r, st, p, cr)
}

// countTokens answers the prompt estimate the gateway admits and reserves
// by, after the same key and model checks as a request. No backend is asked
// and nothing is charged, but it is admitted like a request of no tokens
// (the key's and tenant's request rate and concurrency, as the admin API):
// a count is cheap, not free, and a client may call it before every turn.
func (g *Gateway) countTokens(w http.ResponseWriter, r *http.Request, st *reqState, p billing.Principal, cr *clientRequest) {
	model, aerr := g.resolveModel(st, p, cr)
	if aerr != nil {
		g.fail(w, st, aerr)
		return
	}
	s, aerr := g.admit(w, r, st, p, model, 0)
	if aerr != nil {
		g.fail(w, st, aerr)
		return
	}
	defer s.finish(billing.Usage{})
	b, err := json.Marshal(protocol.TokenCount{Object: "token_count", Model: cr.model, PromptTokens: cr.promptEstimate})
	if err != nil {
		g.fail(w, st, badRequest("", "cannot encode the count: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// edgeWriter translates the chat path's answer for one protocol exchange.
// A JSON answer (success or error) is held until complete: the chat path
// flushes a plain answer right after writing it, and an error is complete
// when the handler returns (close). A 200 text/event-stream answer is
// translated event by event as it is written, flushes passed through, so
// the stream's timing and its settle-before-the-last-byte order survive.
type edgeWriter struct {
	w      http.ResponseWriter
	ex     protocol.Exchange
	status int
	sse    bool
	buf    []byte      // the JSON body, or a partial SSE event
	sent   bool        // the JSON answer went out
	ended  bool        // the stream's last event is known
	last   []byte      // a completed stream's last event, sent by close
	native *nativeCall // set when the answer may be passed through untranslated
}

func (e *edgeWriter) Header() http.Header { return e.w.Header() }

// Unwrap lets http.ResponseController reach the connection (read deadlines).
func (e *edgeWriter) Unwrap() http.ResponseWriter { return e.w }

func (e *edgeWriter) WriteHeader(code int) {
	if e.status != 0 {
		return
	}
	e.status = code
	if code == http.StatusOK && strings.HasPrefix(e.w.Header().Get("Content-Type"), "text/event-stream") {
		e.sse = true
		e.w.WriteHeader(code)
	}
}

func (e *edgeWriter) Write(b []byte) (int, error) {
	if e.status == 0 {
		e.WriteHeader(http.StatusOK)
	}
	e.buf = append(e.buf, b...)
	if !e.sse {
		return len(b), nil
	}
	for {
		i := bytes.Index(e.buf, []byte("\n\n"))
		if i < 0 {
			break
		}
		err := e.event(e.buf[:i])
		e.buf = e.buf[:copy(e.buf, e.buf[i+2:])]
		if err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// FlushError is what http.ResponseController.Flush calls: a held JSON
// answer is complete by then, so it is translated and sent.
func (e *edgeWriter) FlushError() error {
	if e.status == 0 {
		return nil
	}
	if !e.sse {
		e.sendJSON()
	}
	return http.NewResponseController(e.w).Flush()
}

// event translates one SSE event the chat path wrote.
func (e *edgeWriter) event(ev []byte) error {
	if e.ended {
		return nil
	}
	var data []byte
	for line := range bytes.SplitSeq(ev, []byte("\n")) {
		if d, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, bytes.TrimPrefix(d, []byte(" "))...)
		}
	}
	var out []byte
	switch {
	case len(data) == 0:
		return nil
	case string(data) == "[DONE]":
		// The last event waits for close, after the charge is settled:
		// the chat path holds [DONE] back for the same reason, but a
		// translated last event (a whole response object) may be larger
		// than the connection's buffer, which would send it at once.
		e.ended = true
		e.last = e.ex.Done()
		return nil
	case isErrorEvent(data):
		// The gateway's own "stream broke off", or an error event a backend
		// sent mid-stream: either way the protocol's error ends the stream.
		e.ended = true
		out = e.ex.StreamError(data)
	default:
		out = e.ex.Chunk(data)
	}
	if len(out) == 0 {
		return nil
	}
	_, err := e.w.Write(out)
	return err
}

// isErrorEvent tells an {"error":…} event from a chunk; only events that
// mention "error" are decoded.
func isErrorEvent(data []byte) bool {
	if !bytes.Contains(data, []byte(`"error"`)) {
		return false
	}
	var v struct {
		Error   json.RawMessage `json:"error"`
		Choices json.RawMessage `json:"choices"`
	}
	return json.Unmarshal(data, &v) == nil && len(v.Error) > 0 && !isNull(v.Error) && len(v.Choices) == 0
}

// sendJSON translates and sends the held JSON answer, once.
func (e *edgeWriter) sendJSON() {
	if e.sent || e.status == 0 {
		return
	}
	e.sent = true
	status, ctype, out := e.ex.JSON(e.status, e.buf)
	h := e.w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(out)))
	e.w.WriteHeader(status)
	_, _ = e.w.Write(out)
}

// close ends the answer when the handler returns, after settling: a held
// JSON answer goes out, or a completed stream's last event; a stream that stopped without [DONE] or an error event (the gateway
// stopped writing) still ends with the protocol's error event.
func (e *edgeWriter) close() {
	if e.native != nil && e.native.used {
		// Passed through: only a stream's held last event is left to send.
		if e.native.tail != nil {
			_, _ = e.w.Write(e.native.tail)
		}
		return
	}
	switch {
	case !e.sse:
		e.sendJSON()
	case e.last != nil:
		_, _ = e.w.Write(e.last)
	case !e.ended:
		e.ended = true
		if out := e.ex.StreamError(nil); len(out) > 0 {
			_, _ = e.w.Write(out)
		}
	}
}
