package serve

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve/protocol"
)

// Native pass-through: a protocol request (Responses, Messages) whose picked
// backend declares that protocol gets the client's own body, model
// rewritten, on the same path, and the answer goes back as the backend
// wrote it. Everything else about the request is the chat path's: the edge
// decodes the body to a chat request all the same, so auth, scopes,
// admission and the reservation are the translated request's, and forward
// decides per pick whether to translate (docs/protocols.md).

// nativeCall is what forward needs to pass one protocol request through.
type nativeCall struct {
	protocol string   // the adapter's route, as backends declare it
	endpoint Endpoint // the backend path under /v1/
	adapter  protocol.Native
	body     []byte              // the client's body
	out      http.ResponseWriter // the untranslated writer under the edgeWriter
	req      *Request            // the backend request, built at the first native pick

	used bool   // the answer went out untranslated: the edgeWriter stays silent
	tail []byte // a completed stream's last event, sent after settling
}

// on reports whether the request goes to m natively.
func (n *nativeCall) on(m *member) bool { return n != nil && m.speaks(n.protocol) }

// request is the backend request: the client's body with the backend's
// model name, as the chat path rewrites it.
func (n *nativeCall) request(model, id string, stream bool) (*Request, error) {
	if n.req != nil {
		return n.req, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(n.body, &fields); err != nil {
		return nil, err
	}
	m, err := json.Marshal(model)
	if err != nil {
		return nil, err
	}
	fields["model"] = m
	body, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	n.req = &Request{Endpoint: n.endpoint, Model: model, Body: body, Stream: stream, RequestID: id}
	return n.req, nil
}

// usage is the charge for a passed-through answer: the protocol's reported
// prompt, else the estimate; its reported completion when the answer is
// complete, else what was counted.
func (n *nativeCall) usage(cr *clientRequest, u protocol.Usage, complete bool, counted int64) billing.Usage {
	used := billing.Usage{PromptTokens: cr.promptEstimate, CompletionTokens: counted}
	if u.PromptSet {
		used.PromptTokens, used.CachedPromptTokens = u.Prompt, u.Cached
	}
	if complete && u.CompletionSet {
		used.CompletionTokens = u.Completion
	}
	return used
}

// nativePlain settles and sends a whole passed-through answer, as plain does.
func (g *Gateway) nativePlain(cr *clientRequest, resp *Response, s *settlement) billing.Usage {
	n := cr.native
	u, _ := n.adapter.Usage(resp.Body)
	used := n.usage(cr, u, true, 0)
	n.used = true
	return g.plain(n.out, cr, &Response{Body: resp.Body, Usage: &used}, s)
}

// nativeStream passes a backend's protocol stream through event by event,
// flushing each, and holds its last event back until the handler returns
// (after settling), like the chat path's [DONE]. A stream that breaks
// before its first event says so (nothing sent, another backend may
// answer); one that breaks later ends with the protocol's error event
// and is charged what was delivered.
func (g *Gateway) nativeStream(w http.ResponseWriter, r *http.Request, st *reqState, cr *clientRequest, l *lease, s Stream) (billing.Usage, streamBreak) {
	defer s.Close()
	n := cr.native
	rc := http.NewResponseController(n.out)
	var (
		u                  protocol.Usage
		counted, delivered int64
		started, complete  bool
		first              = true
		brk                streamBreak // how the stream broke, if it did
	)
	start := func() {
		h := n.out.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		n.out.WriteHeader(http.StatusOK)
		started, n.used = true, true
	}
	for {
		ev, err := s.Next()
		if err == nil {
			output, last := n.adapter.Event(protocol.EventData(ev), &u)
			frame := append(append([]byte(nil), ev...), "\n\n"...)
			if !started {
				start()
			}
			if last {
				n.tail, complete = frame, true
				break
			}
			if _, err := n.out.Write(frame); err != nil || rc.Flush() != nil {
				st.status = statusClientClosed
				break
			}
			delivered++
			if output {
				counted++
				if first {
					first = false
					g.metrics.ttft.WithLabelValues(st.model).Observe(time.Since(st.start).Seconds())
				}
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			err = &BackendError{Backend: l.name(), Reason: ReasonStream, Err: io.ErrUnexpectedEOF}
		}
		brk = g.streamFailed(w, r, st, cr, l, started, err)
		if brk.over {
			return brk.used, brk
		}
		if brk.end != nil {
			_, _ = n.out.Write(n.adapter.StreamError(brk.end.Message, delivered))
			_ = rc.Flush()
		}
		break
	}
	return n.usage(cr, u, complete, counted), brk
}

// unfit starts forward's set of tried members with those that must not
// serve cr: for a protocol only some backends serve (rerank), the others.
func (g *Gateway) unfit(cr *clientRequest, model string) map[*member]bool {
	tried := make(map[*member]bool, g.opts.MaxAttempts)
	if cr.only == "" {
		return tried
	}
	g.router.mu.RLock()
	defer g.router.mu.RUnlock()
	for _, m := range g.router.byModel[model] {
		if !m.speaks(cr.only) {
			tried[m] = true
		}
	}
	return tried
}
