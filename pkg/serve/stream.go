package serve

// Streamed answers: events passed through as they arrive, usage counted
// from them, and the ways a stream can end.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
)

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
// with the first event, so a stream that breaks before it says so (nothing
// written, retry) and forward tries another backend. Usage is upstream's
// when reported, else counted: one token per content event.
func (g *Gateway) stream(w http.ResponseWriter, r *http.Request, st *reqState, cr *clientRequest, l *lease, s Stream) (billing.Usage, streamBreak) {
	defer s.Close() // cancels upstream work when the client left early
	rc := http.NewResponseController(w)
	var (
		counted     int64
		started     bool
		first, last time.Time
		done        bool
		brk         streamBreak // how the stream broke, if it did
		buf         []byte      // reused: the writer copies what it is given
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
			brk = g.streamFailed(w, r, st, cr, l, started, err)
			if brk.over {
				return brk.used, brk
			}
			if brk.end != nil {
				// Past the first byte no retry: end with an error event.
				g.endStream(w, st, true, brk.end)
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
		return *u, brk
	}
	return billing.Usage{PromptTokens: cr.promptEstimate, CompletionTokens: counted}, brk
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

// streamBreak is what a stream's error means for the request.
type streamBreak struct {
	// fault is the backend's failure, for its lease; nil when the client
	// left or the gateway is shutting down.
	fault error
	// over: the stream never started and its result is settled here:
	// retry (nothing sent, another backend may answer) or, when not, the
	// error answer was sent and used is what to charge.
	over, retry bool
	used        billing.Usage
	// end, when not over: the error event that ends the stream (the
	// protocol's: server_shutdown when the grace period ended,
	// backend_error when the backend broke off); nil ends it silently
	// (the client left).
	end *apiError
}

// streamFailed reads a stream's error err; started tells whether events
// went out already.
func (g *Gateway) streamFailed(w http.ResponseWriter, r *http.Request, st *reqState, cr *clientRequest, l *lease, started bool, err error) streamBreak {
	if shuttingDown(r) {
		e := serverShutdown()
		if !started {
			g.fail(w, st, e)
			return streamBreak{over: true, used: billing.Usage{PromptTokens: cr.promptEstimate}}
		}
		st.status = e.Status
		return streamBreak{end: e}
	}
	if r.Context().Err() != nil {
		st.status = statusClientClosed
		return streamBreak{}
	}
	g.log.Warn("stream broke", "request_id", st.id, "backend", l.name(), "err", err)
	if started {
		st.status = http.StatusBadGateway
		return streamBreak{fault: err, end: &apiError{Status: http.StatusBadGateway, Type: typeServer, Code: "backend_error",
			Message: "the backend stream broke off"}}
	}
	if classify(err).retryStream {
		return streamBreak{fault: err, over: true, retry: true} // nothing sent: the caller may retry
	}
	g.fail(w, st, g.backendAPIError(r, st.model, err))
	return streamBreak{fault: err, over: true, used: billing.Usage{PromptTokens: cr.promptEstimate}}
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
