package serve_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve"
)

// nativeDouble is a backend that serves the Responses, Messages and rerank
// APIs itself (and nothing else but its model list): it records each body it
// got and answers fixed bytes, so a test can tell a pass-through (the
// client gets exactly these bytes) from a translation. A prompt containing
// "cut" ends a stream after two output deltas, without its last event.
type nativeDouble struct {
	srv *httptest.Server

	mu     sync.Mutex
	bodies map[string][]map[string]json.RawMessage // by path
}

const (
	nativeResponse = `{"id":"resp_native","object":"response","status":"completed","model":"native-model",` +
		`"output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"native"}]}],` +
		`"usage":{"input_tokens":11,"input_tokens_details":{"cached_tokens":4},"output_tokens":7,"total_tokens":18}}`
	nativeMessage = `{"id":"msg_native","type":"message","role":"assistant","model":"native-model",` +
		`"content":[{"type":"text","text":"native"}],"stop_reason":"end_turn",` +
		`"usage":{"input_tokens":9,"cache_read_input_tokens":2,"output_tokens":6}}`
	nativeRerank = `{"model":"native-model","results":[{"index":1,"relevance_score":0.9},{"index":0,"relevance_score":0.1}],` +
		`"usage":{"prompt_tokens":23,"total_tokens":23}}`
	nativeScore = `{"object":"list","data":[{"index":0,"object":"score","score":0.5}],"usage":{"total_tokens":17}}`
)

// nativeStreams are the double's streams, complete (all events) or cut
// (the events up to cut).
var nativeStreams = map[string]struct {
	events []string
	cut    int
}{
	"/v1/responses": {events: []string{
		"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_native\",\"status\":\"in_progress\"}}",
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"na\"}",
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"delta\":\"ti\"}",
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":3,\"delta\":\"ve\"}",
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":4,\"response\":{\"id\":\"resp_native\",\"status\":\"completed\"," +
			"\"usage\":{\"input_tokens\":11,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":3,\"total_tokens\":14}}}",
	}, cut: 3},
	"/v1/messages": {events: []string{
		"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_native\",\"usage\":{\"input_tokens\":9,\"cache_read_input_tokens\":2,\"output_tokens\":1}}}",
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
		"event: ping\ndata: {\"type\":\"ping\"}",
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"na\"}}",
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ti\"}}",
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ve\"}}",
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}",
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}",
		"event: message_stop\ndata: {\"type\":\"message_stop\"}",
	}, cut: 5},
}

func startNativeDouble(t *testing.T) *nativeDouble {
	t.Helper()
	d := &nativeDouble{bodies: map[string][]map[string]json.RawMessage{}}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *nativeDouble) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/models" {
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"native-model","object":"model"}]}`)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var body map[string]json.RawMessage
	if json.Unmarshal(raw, &body) != nil {
		http.Error(w, "not JSON", http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	d.bodies[r.URL.Path] = append(d.bodies[r.URL.Path], body)
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/rerank":
		_, _ = io.WriteString(w, nativeRerank)
		return
	case "/v1/score":
		_, _ = io.WriteString(w, nativeScore)
		return
	case "/v1/responses", "/v1/messages":
	default:
		http.Error(w, `{"error":{"message":"no such route here"}}`, http.StatusNotFound)
		return
	}
	if string(body["stream"]) != "true" {
		if r.URL.Path == "/v1/responses" {
			_, _ = io.WriteString(w, nativeResponse)
		} else {
			_, _ = io.WriteString(w, nativeMessage)
		}
		return
	}
	s := nativeStreams[r.URL.Path]
	events := s.events
	if strings.Contains(string(raw), "cut") {
		events = events[:s.cut]
	}
	w.Header().Set("Content-Type", "text/event-stream")
	for _, ev := range events {
		_, _ = io.WriteString(w, ev+"\n\n")
		w.(http.Flusher).Flush()
	}
}

// got returns the bodies the double got on path.
func (d *nativeDouble) got(path string) []map[string]json.RawMessage {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]map[string]json.RawMessage(nil), d.bodies[path]...)
}

// nativeFixture is a gateway over the native double (native-model, all
// protocols declared, aliased as "nat") and an ordinary chat double
// (double-model), recording each request's reserved prompt estimate.
func nativeFixture(t *testing.T) (*fixture, *nativeDouble, *upstreamdouble.Double, func(id string) int64) {
	t.Helper()
	nd := startNativeDouble(t)
	cd := upstreamdouble.Start(t, upstreamdouble.Options{Name: "chat"})
	var mu sync.Mutex
	estimates := map[string]int64{}
	f := newFixture(t, func(o *serve.Options) {
		o.Remotes = append(o.Remotes, serve.RemoteConfig{Name: "native", URL: nd.srv.URL,
			Protocols: []string{"chat", "responses", "messages", "rerank"}})
		o.Aliases = map[string]string{"nat": "native-model"}
	}, cd)
	f.rec.reserve = func(rr billing.ReserveRequest) error {
		mu.Lock()
		estimates[rr.RequestID] = rr.PromptTokens
		mu.Unlock()
		return nil
	}
	return f, nd, cd, func(id string) int64 {
		mu.Lock()
		defer mu.Unlock()
		return estimates[id]
	}
}

// sameBodyBut reports whether got is sent with model replaced by model.
func sameBodyBut(t *testing.T, sent string, got map[string]json.RawMessage, model string) {
	t.Helper()
	var want map[string]any
	if err := json.Unmarshal([]byte(sent), &want); err != nil {
		t.Fatal(err)
	}
	want["model"] = model
	b, _ := json.Marshal(got)
	var have map[string]any
	_ = json.Unmarshal(b, &have)
	if !reflect.DeepEqual(want, have) {
		t.Fatalf("backend got %s, want the client's body with model %q: %v", b, model, want)
	}
}

func responsesBody(model string, stream bool, text string) string {
	b, _ := json.Marshal(map[string]any{"model": model, "input": text, "stream": stream, "max_output_tokens": 50,
		"instructions": "be brief", "temperature": 0.5})
	return string(b)
}

func nativeMessagesBody(model string, stream bool, text string) string {
	b, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 50, "stream": stream, "system": "be brief",
		"messages": []any{map[string]any{"role": "user", "content": text}}})
	return string(b)
}

// TestNativePassThroughPlain: a backend declaring responses and messages
// gets the client's own body (model rewritten from the alias), the client
// gets the backend's bytes, and the charge is the protocol's usage.
func TestNativePassThroughPlain(t *testing.T) {
	f, nd, cd, _ := nativeFixture(t)
	for _, c := range []struct {
		path, body, want string
		key              []string
		usage            billing.Usage
	}{
		{"/v1/responses", responsesBody("nat", false, "hello there"), nativeResponse, nil,
			billing.Usage{PromptTokens: 11, CompletionTokens: 7, CachedPromptTokens: 4}},
		{"/v1/messages", nativeMessagesBody("nat", false, "hello there"), nativeMessage, []string{"X-Api-Key", "good"},
			billing.Usage{PromptTokens: 11, CompletionTokens: 6, CachedPromptTokens: 2}},
	} {
		id := "plain" + c.path
		key := "good"
		if c.key != nil {
			key = ""
		}
		resp := f.post(t, c.path, key, c.body, append([]string{"X-Request-Id", id}, c.key...)...)
		if got := readAll(t, resp); resp.StatusCode != 200 || got != c.want || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %q\n%s", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), got)
		}
		bodies := nd.got(c.path)
		if len(bodies) != 1 {
			t.Fatalf("%s: the backend got %d requests", c.path, len(bodies))
		}
		sameBodyBut(t, c.body, bodies[0], "native-model")
		if u := f.rec.settledOnce(t, id); u != c.usage {
			t.Fatalf("%s: settled %+v, want %+v", c.path, u, c.usage)
		}
	}
	if n := len(cd.Records()); n != 0 {
		t.Fatalf("the chat double got %d requests", n)
	}
	if n := counterWith(t, f.gw, "llmctl_requests_total", "route", "responses"); n != 1 {
		t.Fatalf("responses route counted %v", n)
	}
	// Same key checks and scopes as any request: nothing reaches the backend.
	for _, key := range []string{"nope", "scoped"} {
		resp := f.post(t, "/v1/responses", key, responsesBody("nat", false, "x"))
		if got := readAll(t, resp); resp.StatusCode != 401 && resp.StatusCode != 403 {
			t.Fatalf("key %s: %d %s", key, resp.StatusCode, got)
		}
	}
	if n := len(nd.got("/v1/responses")); n != 1 {
		t.Fatalf("a refused request reached the backend (%d requests)", n)
	}
}

// TestNativePassThroughStream: a passed-through stream reaches the client
// byte for byte, its last event after the charge, which is the protocol's
// reported usage; a stream cut mid-way ends with the protocol's error
// event and is charged the delivered output (and the reported prompt, or
// the estimate when the protocol reports it only at the end).
func TestNativePassThroughStream(t *testing.T) {
	f, nd, _, estimate := nativeFixture(t)
	for _, c := range []struct {
		path, body, cutBody string
		key                 []string
		usage, cutUsage     billing.Usage
		errorEvent          string
	}{
		{"/v1/responses", responsesBody("native-model", true, "hi"), responsesBody("native-model", true, "hi cut"), nil,
			billing.Usage{PromptTokens: 11, CompletionTokens: 3, CachedPromptTokens: 4}, billing.Usage{CompletionTokens: 2},
			"event: error\ndata: {\"type\":\"error\",\"code\":\"stream_interrupted\",\"message\":\"the backend stream broke off\",\"param\":null,\"sequence_number\":3}\n\n"},
		{"/v1/messages", nativeMessagesBody("native-model", true, "hi"), nativeMessagesBody("native-model", true, "hi cut"), []string{"X-Api-Key", "good"},
			billing.Usage{PromptTokens: 11, CompletionTokens: 3, CachedPromptTokens: 2}, billing.Usage{PromptTokens: 11, CompletionTokens: 2, CachedPromptTokens: 2},
			"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"the backend stream broke off\"}}\n\n"},
	} {
		key := "good"
		if c.key != nil {
			key = ""
		}
		s := nativeStreams[c.path]
		id := "stream" + c.path
		resp := f.post(t, c.path, key, c.body, append([]string{"X-Request-Id", id}, c.key...)...)
		want := strings.Join(s.events, "\n\n") + "\n\n"
		if got := readAll(t, resp); resp.StatusCode != 200 || got != want || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("%s: %d\n%s\nwant\n%s", c.path, resp.StatusCode, got, want)
		}
		sameBodyBut(t, c.body, nd.got(c.path)[0], "native-model")
		if u := f.rec.settledOnce(t, id); u != c.usage {
			t.Fatalf("%s: settled %+v, want %+v", c.path, u, c.usage)
		}

		id = "cut" + c.path
		resp = f.post(t, c.path, key, c.cutBody, append([]string{"X-Request-Id", id}, c.key...)...)
		want = strings.Join(s.events[:s.cut], "\n\n") + "\n\n" + c.errorEvent
		if got := readAll(t, resp); resp.StatusCode != 200 || got != want {
			t.Fatalf("%s cut: %d\n%s\nwant\n%s", c.path, resp.StatusCode, got, want)
		}
		wantUsage := c.cutUsage
		if wantUsage.PromptTokens == 0 {
			wantUsage.PromptTokens = estimate(id)
		}
		if u := f.rec.settledOnce(t, id); u != wantUsage || u.PromptTokens == 0 {
			t.Fatalf("%s cut: settled %+v, want %+v", c.path, u, wantUsage)
		}
	}
}

// TestNativeOnlyWhereDeclared: the same protocols on a backend that does
// not declare them are translated to chat, as before.
func TestNativeOnlyWhereDeclared(t *testing.T) {
	f, nd, cd, _ := nativeFixture(t)
	resp := f.post(t, "/v1/responses", "good", responsesBody("double-model", false, "a b tokens=3"), "X-Request-Id", "tr")
	var r struct {
		Object string
		Usage  struct {
			OutputTokens int64 `json:"output_tokens"`
		}
	}
	if got := readAll(t, resp); resp.StatusCode != 200 || json.Unmarshal([]byte(got), &r) != nil || r.Object != "response" || r.Usage.OutputTokens != 3 {
		t.Fatalf("%d %s", resp.StatusCode, got)
	}
	resp = f.post(t, "/v1/messages", "good", nativeMessagesBody("double-model", true, "a b tokens=2"), "X-Request-Id", "tm")
	if got := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(got, "event: message_stop") {
		t.Fatalf("%d %s", resp.StatusCode, got)
	}
	for _, id := range []string{"tr", "tm"} {
		if rec, ok := cd.Record(id); !ok || rec.Endpoint != "chat/completions" {
			t.Fatalf("%s: the chat double's record %+v", id, rec)
		}
	}
	if n := len(nd.got("/v1/responses")) + len(nd.got("/v1/messages")); n != 0 {
		t.Fatalf("the native double got %d requests", n)
	}
}

// TestRerank: /v1/rerank and /v1/score go to the backend declaring rerank,
// body passed through, answer untranslated, charged the reported usage as
// prompt tokens under the route "rerank"; a model without such a backend
// is a 404 saying so; the body is checked first.
func TestRerank(t *testing.T) {
	f, nd, _, _ := nativeFixture(t)
	rr := `{"model":"nat","query":"what is a GPU","documents":["a chip","a fruit"],"top_n":2}`
	resp := f.post(t, "/v1/rerank", "good", rr, "X-Request-Id", "r1")
	if got := readAll(t, resp); resp.StatusCode != 200 || got != nativeRerank {
		t.Fatalf("%d %s", resp.StatusCode, got)
	}
	sameBodyBut(t, rr, nd.got("/v1/rerank")[0], "native-model")
	if u := f.rec.settledOnce(t, "r1"); u != (billing.Usage{PromptTokens: 23}) {
		t.Fatalf("settled %+v", u)
	}
	sc := `{"model":"native-model","text_1":"what is a GPU","text_2":["a chip"]}`
	resp = f.post(t, "/v1/score", "good", sc, "X-Request-Id", "s1")
	if got := readAll(t, resp); resp.StatusCode != 200 || got != nativeScore {
		t.Fatalf("%d %s", resp.StatusCode, got)
	}
	if u := f.rec.settledOnce(t, "s1"); u != (billing.Usage{PromptTokens: 17}) {
		t.Fatalf("score settled %+v (total_tokens is all prompt)", u)
	}
	if n := counterWith(t, f.gw, "llmctl_requests_total", "route", "rerank"); n != 2 {
		t.Fatalf("rerank route counted %v", n)
	}
	for _, c := range []struct {
		key, body string
		status    int
		says      string
	}{
		{"good", `{"model":"double-model","query":"q","documents":["d"]}`, 404, `double-model\" has no backend that serves rerank`},
		{"good", `{"model":"nope","query":"q","documents":["d"]}`, 404, `does not exist`},
		{"good", `{"model":"nat"}`, 400, "query"},
		{"good", `{"model":"nat","query":"q","documents":["d"],"stream":true}`, 400, "cannot be streamed"},
		{"scoped", rr, 403, "may not use"},
		{"", rr, 401, "missing API key"},
	} {
		resp := f.post(t, "/v1/rerank", c.key, c.body)
		if got := readAll(t, resp); resp.StatusCode != c.status || !strings.Contains(got, c.says) {
			t.Errorf("%s: %d %s; want %d saying %q", c.body, resp.StatusCode, got, c.status, c.says)
		}
	}
	if n := len(nd.got("/v1/rerank")); n != 1 {
		t.Fatalf("refused requests reached the backend (%d)", n)
	}
}
