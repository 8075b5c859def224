// Package upstreamdouble is an OpenAI-compatible backend test double: a real
// HTTP server on a loopback port that answers chat, completions, embeddings
// and models, streams token by token, and on request stalls, breaks off,
// delays or answers an error status.
//
// It keeps an exact record per X-Request-Id of the tokens it delivered: a
// completion token counts once its chunk was written and flushed without
// error. When the double itself ends a stream early (fail-after, stall-after)
// every counted token was already on the wire before the cut, so a gateway
// reading the stream sees exactly that many; ledger tests rely on this.
//
// Per-request behaviour is chosen by directives anywhere in the prompt text:
//
//	tokens=N        completion length (default 5)
//	gap=DURATION    pause before each streamed token (default 0)
//	delay=DURATION  pause before the response headers
//	status=CODE     answer with this HTTP status and an OpenAI error body
//	fail-after=N    stream N tokens, then cut the connection (no [DONE])
//	stall-after=N   stream N tokens, then send nothing until the client leaves
//	cached=N        report N prompt tokens as cached (usage.prompt_tokens_details)
//	tool=NAME       (chat) answer a call of the function NAME with arguments
//	                {"words":W} (W = prompt words), finish_reason tool_calls,
//	                2 completion tokens (the arguments' two fragments), unless
//	                the conversation already holds a tool result: then text
//	bill-less=N     report N fewer completion tokens in usage than were
//	                generated (an injected billing bug; /metrics counts all)
//
// Whole-backend behaviour is set with SetFault and Down/Up.
package upstreamdouble

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Options configure a Double.
type Options struct {
	Name   string   // owned_by in /v1/models; default "double"
	Models []string // default ["double-model"]
	// APIKey, when set, is required as the upstream bearer token.
	APIKey string
	// Metrics, when set, serves GET /metrics with the token counters of
	// that server: MetricsVLLM or MetricsLlamaCpp (metrics.go).
	Metrics string
}

// Fault is whole-backend misbehaviour for inference requests.
type Fault struct {
	Status     int    // answer every inference request with this status (e.g. 500, 503, 429)
	RetryAfter string // Retry-After header with Status
	// CutStreams sends a stream's 200 headers and then cuts the connection
	// before the first event.
	CutStreams bool
}

// Record is what the double did for one request id.
type Record struct {
	RequestID        string
	Endpoint         string // chat/completions, completions, embeddings
	Model            string
	Stream           bool
	IncludeUsage     bool // the request asked for the usage chunk
	Status           int  // status sent, 0 if the connection was cut before headers
	PromptTokens     int64
	CompletionTokens int64 // delivered (written and flushed) completion tokens
	Completed        bool  // the whole answer, [DONE] included, was delivered
	Canceled         bool  // the client went away before the end
}

// Double is a running test backend.
type Double struct {
	opts Options
	addr string

	mu      sync.Mutex
	srv     *http.Server
	fault   Fault
	records map[string]*Record
	order   []string

	requests atomic.Int64
	changed  chan struct{} // closed and replaced on every record change
	counters counterBase   // metrics.go
}

// Start runs a double on a random loopback port until the test ends.
func Start(t testing.TB, opts Options) *Double {
	t.Helper()
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// New starts a double; Close stops it.
func New(opts Options) (*Double, error) {
	if opts.Name == "" {
		opts.Name = "double"
	}
	if len(opts.Models) == 0 {
		opts.Models = []string{"double-model"}
	}
	d := &Double{opts: opts, records: map[string]*Record{}, changed: make(chan struct{}),
		counters: counterBase{start: time.Now(), base: map[string][2]int64{}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("upstreamdouble: listen: %w", err)
	}
	d.addr = ln.Addr().String()
	d.serve(ln)
	return d, nil
}

func (d *Double) serve(ln net.Listener) {
	srv := &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second}
	d.mu.Lock()
	d.srv = srv
	d.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// URL is the base URL (without /v1).
func (d *Double) URL() string { return "http://" + d.addr }

// Name is the double's name.
func (d *Double) Name() string { return d.opts.Name }

// Close stops the double and cuts open connections.
func (d *Double) Close() {
	d.mu.Lock()
	srv := d.srv
	d.srv = nil
	d.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Down stops listening: connections are refused until Up.
func (d *Double) Down() { d.Close() }

// Up listens again on the same address.
func (d *Double) Up() error {
	ln, err := net.Listen("tcp", d.addr)
	if err != nil {
		return fmt.Errorf("upstreamdouble: relisten %s: %w", d.addr, err)
	}
	d.serve(ln)
	return nil
}

// SetFault sets whole-backend misbehaviour; the zero Fault clears it.
func (d *Double) SetFault(f Fault) {
	d.mu.Lock()
	d.fault = f
	d.mu.Unlock()
}

// Requests counts inference requests received (not /v1/models).
func (d *Double) Requests() int64 { return d.requests.Load() }

// Record returns the record for a request id.
func (d *Double) Record(id string) (Record, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.records[id]
	if !ok {
		return Record{}, false
	}
	return *r, true
}

// Records returns every record in arrival order.
func (d *Double) Records() []Record {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Record, 0, len(d.order))
	for _, id := range d.order {
		out = append(out, *d.records[id])
	}
	return out
}

// Wait blocks until cond holds for the record of id, or ctx ends.
func (d *Double) Wait(ctx context.Context, id string, cond func(Record) bool) (Record, error) {
	for {
		d.mu.Lock()
		ch := d.changed
		r, ok := d.records[id]
		var rec Record
		if ok {
			rec = *r
		}
		d.mu.Unlock()
		if ok && cond(rec) {
			return rec, nil
		}
		select {
		case <-ctx.Done():
			return rec, fmt.Errorf("upstreamdouble: waiting on request %q: %w (last record: %+v)", id, ctx.Err(), rec)
		case <-ch:
		}
	}
}

// update changes a record under the lock and wakes waiters.
func (d *Double) update(rec *Record, f func(*Record)) {
	d.mu.Lock()
	f(rec)
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

func (d *Double) newRecord(id string, r Record) *Record {
	d.mu.Lock()
	defer d.mu.Unlock()
	if id == "" {
		id = fmt.Sprintf("anon-%d", len(d.order)+1)
	}
	// A retried id is recorded afresh; the earlier record keeps its name with a suffix.
	if old, ok := d.records[id]; ok {
		alt := fmt.Sprintf("%s#%d", id, len(d.order)+1)
		old.RequestID = alt
		d.records[alt] = old
		for i, o := range d.order {
			if o == id {
				d.order[i] = alt
			}
		}
	}
	r.RequestID = id
	rec := &r
	d.records[id] = rec
	d.order = append(d.order, id)
	close(d.changed)
	d.changed = make(chan struct{})
	return rec
}

// directives are the per-request behaviour read from the prompt.
type directives struct {
	tokens     int
	gap, delay time.Duration
	status     int
	failAfter  int // -1 = never
	stallAfter int // -1 = never
	cached     int64
	tool       string
	billLess   int64
}

func parseDirectives(words []string) directives {
	dv := directives{tokens: 5, failAfter: -1, stallAfter: -1}
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			continue
		}
		n, nerr := strconv.Atoi(v)
		dur, derr := time.ParseDuration(v)
		switch {
		case k == "tokens" && nerr == nil && n >= 0:
			dv.tokens = n
		case k == "gap" && derr == nil:
			dv.gap = dur
		case k == "delay" && derr == nil:
			dv.delay = dur
		case k == "status" && nerr == nil:
			dv.status = n
		case k == "fail-after" && nerr == nil:
			dv.failAfter = n
		case k == "stall-after" && nerr == nil:
			dv.stallAfter = n
		case k == "cached" && nerr == nil && n >= 0:
			dv.cached = int64(n)
		case k == "tool" && v != "":
			dv.tool = v
		case k == "bill-less" && nerr == nil && n >= 0:
			dv.billLess = int64(n)
		}
	}
	return dv
}

func writeErr(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
	_, _ = w.Write(b)
}

// ServeHTTP answers the OpenAI API.
func (d *Double) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d.opts.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+d.opts.APIKey {
		writeErr(w, http.StatusUnauthorized, "authentication_error", "bad upstream key")
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		d.models(w)
	case r.Method == http.MethodGet && r.URL.Path == "/metrics" && d.opts.Metrics != "":
		d.metrics(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/"):
		d.inference(w, r, strings.TrimPrefix(r.URL.Path, "/v1/"))
	default:
		writeErr(w, http.StatusNotFound, "invalid_request_error", "no route "+r.URL.Path)
	}
}

func (d *Double) models(w http.ResponseWriter) {
	type m struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		OwnedBy string `json:"owned_by"`
	}
	data := make([]m, 0, len(d.opts.Models))
	for _, id := range d.opts.Models {
		data = append(data, m{ID: id, Object: "model", OwnedBy: d.opts.Name})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data})
}

// request is the part of an OpenAI request the double reads.
type request struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Prompt        json.RawMessage `json:"prompt"`
	Input         json.RawMessage `json:"input"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// words extracts every string in a JSON value (string, array, parts objects).
func words(raw json.RawMessage) []string {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, strings.Fields(x)...)
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			if t, ok := x["text"]; ok {
				walk(t)
			}
		}
	}
	walk(v)
	return out
}

func (d *Double) inference(w http.ResponseWriter, r *http.Request, endpoint string) {
	d.requests.Add(1)
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", "bad JSON: "+err.Error())
		return
	}
	var ws []string
	switch endpoint {
	case "chat/completions":
		for _, m := range req.Messages {
			ws = append(ws, words(m.Content)...)
		}
	case "completions":
		ws = words(req.Prompt)
	case "embeddings":
		ws = words(req.Input)
	default:
		writeErr(w, http.StatusNotFound, "invalid_request_error", "no endpoint "+endpoint)
		return
	}
	dv := parseDirectives(ws)
	for _, m := range req.Messages {
		if m.Role == "tool" {
			dv.tool = "" // the call was answered: now the text
		}
	}
	rec := d.newRecord(r.Header.Get("X-Request-Id"), Record{Endpoint: endpoint, Model: req.Model, Stream: req.Stream,
		IncludeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage, PromptTokens: int64(len(ws))})

	d.mu.Lock()
	fault := d.fault
	d.mu.Unlock()
	if dv.delay > 0 {
		select {
		case <-time.After(dv.delay):
		case <-r.Context().Done():
			d.update(rec, func(r *Record) { r.Canceled = true })
			return
		}
	}
	status := dv.status
	if fault.Status != 0 {
		status = fault.Status
		if fault.RetryAfter != "" {
			w.Header().Set("Retry-After", fault.RetryAfter)
		}
	}
	if status != 0 && status != http.StatusOK {
		d.update(rec, func(r *Record) { r.Status = status; r.Completed = true })
		writeErr(w, status, "server_error", fmt.Sprintf("double answers %d", status))
		return
	}
	if endpoint != "embeddings" && !req.Stream && dv.failAfter >= 0 {
		panic(http.ErrAbortHandler) // cut before any answer
	}
	switch {
	case endpoint == "embeddings":
		d.embeddings(w, rec, req, ws)
	case req.Stream:
		d.stream(w, r, rec, endpoint, req, dv)
	default:
		d.plain(w, rec, endpoint, req, dv)
	}
}

func token(i int) string { return "t" + strconv.Itoa(i) + " " }

// toolArgs are the fragments of the tool=NAME call's arguments.
func toolArgs(rec *Record) []string {
	return []string{`{"words":`, strconv.FormatInt(rec.PromptTokens, 10) + "}"}
}

func usage(prompt, completion, cached int64) map[string]any {
	u := map[string]any{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
	if cached > 0 {
		u["prompt_tokens_details"] = map[string]int64{"cached_tokens": cached}
	}
	return u
}

func (d *Double) plain(w http.ResponseWriter, rec *Record, endpoint string, req request, dv directives) {
	var sb strings.Builder
	for i := range dv.tokens {
		sb.WriteString(token(i + 1))
	}
	var choice map[string]any
	object := "chat.completion"
	if endpoint == "completions" {
		object = "text_completion"
		choice = map[string]any{"index": 0, "text": sb.String(), "finish_reason": "stop", "logprobs": nil}
	} else {
		choice = map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": sb.String()}, "finish_reason": "stop"}
	}
	if dv.tool != "" && endpoint == "chat/completions" {
		dv.tokens = len(toolArgs(rec))
		choice = map[string]any{"index": 0, "finish_reason": "tool_calls", "message": map[string]any{"role": "assistant", "content": nil,
			"tool_calls": []any{map[string]any{"id": "call_" + rec.RequestID, "type": "function",
				"function": map[string]any{"name": dv.tool, "arguments": strings.Join(toolArgs(rec), "")}}}}}
	}
	body, _ := json.Marshal(map[string]any{"id": "cmpl-" + rec.RequestID, "object": object, "created": time.Now().Unix(),
		"model": req.Model, "choices": []any{choice}, "usage": usage(rec.PromptTokens, max(0, int64(dv.tokens)-dv.billLess), dv.cached)})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(body)
	d.update(rec, func(r *Record) {
		r.Status = http.StatusOK
		if err == nil {
			r.CompletionTokens, r.Completed = int64(dv.tokens), true
		} else {
			r.Canceled = true
		}
	})
}

func (d *Double) embeddings(w http.ResponseWriter, rec *Record, req request, ws []string) {
	var inputs []any
	var one string
	if json.Unmarshal(req.Input, &one) == nil {
		inputs = []any{one}
	} else {
		_ = json.Unmarshal(req.Input, &inputs)
	}
	data := make([]any, 0, len(inputs))
	for i := range inputs {
		vec := make([]float64, 8)
		for j := range vec {
			vec[j] = float64(i+1) / float64(j+1)
		}
		data = append(data, map[string]any{"object": "embedding", "index": i, "embedding": vec})
	}
	body, _ := json.Marshal(map[string]any{"object": "list", "model": req.Model, "data": data,
		"usage": map[string]int64{"prompt_tokens": int64(len(ws)), "total_tokens": int64(len(ws))}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(body)
	d.update(rec, func(r *Record) { r.Status, r.Completed, r.Canceled = http.StatusOK, err == nil, err != nil })
}

func (d *Double) stream(w http.ResponseWriter, r *http.Request, rec *Record, endpoint string, req request, dv directives) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush() // headers out now, as real servers do before the first token
	d.update(rec, func(r *Record) { r.Status = http.StatusOK })
	d.mu.Lock()
	cut := d.fault.CutStreams
	d.mu.Unlock()
	if cut {
		panic(http.ErrAbortHandler)
	}
	created := time.Now().Unix()
	object := "chat.completion.chunk"
	if endpoint == "completions" {
		object = "text_completion"
	}
	// The chunk's fixed head is encoded once; only the text varies.
	idJSON, _ := json.Marshal("cmpl-" + rec.RequestID)
	modelJSON, _ := json.Marshal(req.Model)
	head := fmt.Sprintf(`{"id":%s,"object":%q,"created":%d,"model":%s,"choices":[`, idJSON, object, created, modelJSON)
	chunk := func(text string, finish any, withChoice bool) []byte {
		b := make([]byte, 0, len(head)+96)
		b = append(b, head...)
		if withChoice {
			textJSON, _ := json.Marshal(text)
			finishJSON, _ := json.Marshal(finish)
			if endpoint == "completions" {
				b = append(b, `{"index":0,"text":`...)
				b = append(b, textJSON...)
				b = append(b, `,"logprobs":null,"finish_reason":`...)
			} else {
				b = append(b, `{"index":0,"delta":{`...)
				if text != "" {
					b = append(b, `"content":`...)
					b = append(b, textJSON...)
				}
				b = append(b, `},"finish_reason":`...)
			}
			b = append(b, finishJSON...)
			b = append(b, '}')
		}
		return append(b, "]}"...)
	}
	send := func(data []byte) bool {
		msg := make([]byte, 0, len(data)+8)
		msg = append(append(append(msg, "data: "...), data...), "\n\n"...)
		if _, err := w.Write(msg); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	canceled := func() { d.update(rec, func(r *Record) { r.Canceled = true }) }
	if dv.tool != "" && endpoint == "chat/completions" {
		d.streamTool(rec, send, head, dv, req.StreamOptions != nil && req.StreamOptions.IncludeUsage, created, object, req.Model)
		return
	}
	for i := range dv.tokens {
		if r.Context().Err() != nil {
			canceled()
			return
		}
		if dv.failAfter == i {
			panic(http.ErrAbortHandler) // cut the connection mid-stream
		}
		if dv.stallAfter == i {
			<-r.Context().Done()
			canceled()
			return
		}
		if dv.gap > 0 {
			select {
			case <-time.After(dv.gap):
			case <-r.Context().Done():
				canceled()
				return
			}
		}
		if !send(chunk(token(i+1), nil, true)) {
			canceled()
			return
		}
		d.update(rec, func(r *Record) { r.CompletionTokens++ })
	}
	if dv.failAfter == dv.tokens {
		panic(http.ErrAbortHandler)
	}
	if dv.stallAfter == dv.tokens {
		<-r.Context().Done()
		canceled()
		return
	}
	if !send(chunk("", "stop", true)) {
		canceled()
		return
	}
	d.endStream(rec, send, req.StreamOptions != nil && req.StreamOptions.IncludeUsage, created, object, req.Model, max(0, dv.tokens-int(dv.billLess)), dv.cached)
}

// endStream sends the usage chunk, when asked for, and [DONE].
func (d *Double) endStream(rec *Record, send func([]byte) bool, includeUsage bool, created int64, object, model string, completion int, cached int64) {
	if includeUsage {
		b, _ := json.Marshal(map[string]any{"id": "cmpl-" + rec.RequestID, "object": object, "created": created,
			"model": model, "choices": []any{}, "usage": usage(rec.PromptTokens, int64(completion), cached)})
		if !send(b) {
			d.update(rec, func(r *Record) { r.Canceled = true })
			return
		}
	}
	if !send([]byte("[DONE]")) {
		d.update(rec, func(r *Record) { r.Canceled = true })
		return
	}
	d.update(rec, func(r *Record) { r.Completed = true })
}

// streamTool streams the tool=NAME call: the call's head, then its
// arguments in fragments, each one counted completion token.
func (d *Double) streamTool(rec *Record, send func([]byte) bool, head string, dv directives, includeUsage bool, created int64, object, model string) {
	canceled := func() { d.update(rec, func(r *Record) { r.Canceled = true }) }
	call := func(first bool, args string) []byte {
		tc := map[string]any{"index": 0, "function": map[string]any{"arguments": args}}
		if first {
			tc["id"], tc["type"] = "call_"+rec.RequestID, "function"
			tc["function"] = map[string]any{"name": dv.tool, "arguments": args}
		}
		b, _ := json.Marshal(map[string]any{"index": 0, "delta": map[string]any{"tool_calls": []any{tc}}, "finish_reason": nil})
		return append(append([]byte(head), b...), "]}"...)
	}
	if !send(call(true, "")) {
		canceled()
		return
	}
	args := toolArgs(rec)
	for i, a := range args {
		if dv.failAfter == i {
			panic(http.ErrAbortHandler)
		}
		if !send(call(false, a)) {
			canceled()
			return
		}
		d.update(rec, func(r *Record) { r.CompletionTokens++ })
	}
	if !send([]byte(head + `{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`)) {
		canceled()
		return
	}
	d.endStream(rec, send, includeUsage, created, object, model, len(args), dv.cached)
}
