package serve_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/apierror"
	"github.com/llmctl/llmctl/pkg/serve/protocol"
)

// echoProtocol is a protocol for testing the seam alone: {"model","say",
// "stream","count"} in; {"said","status"} or {"oops"} out; a stream of
// "said" / "done" / "oops" events. Keys come in x-api-key.
type echoProtocol struct{}

func (echoProtocol) Route() string                { return "echo" }
func (echoProtocol) Paths() []string              { return []string{"/v1/echo"} }
func (echoProtocol) APIKey(h http.Header) string  { return h.Get("X-Api-Key") }
func (echoProtocol) New(string) protocol.Exchange { return &echoExchange{} }

type echoExchange struct{ usage json.RawMessage }

func (x *echoExchange) Decode(body []byte) (*protocol.Request, *apierror.Error) {
	var in struct {
		Model  string `json:"model"`
		Say    string `json:"say"`
		Stream bool   `json:"stream"`
		Count  bool   `json:"count"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Say == "" {
		return nil, &apierror.Error{Status: http.StatusBadRequest, Type: apierror.TypeInvalidRequest, Param: "say", Message: "say what?"}
	}
	chat, _ := json.Marshal(map[string]any{"model": in.Model, "stream": in.Stream,
		"messages": []any{map[string]any{"role": "user", "content": in.Say}}})
	return &protocol.Request{Chat: chat, CountTokens: in.Count}, nil
}

func (x *echoExchange) JSON(status int, body []byte) (int, string, []byte) {
	if status != http.StatusOK {
		var e struct{ Error struct{ Message string } }
		_ = json.Unmarshal(body, &e)
		out, _ := json.Marshal(map[string]any{"oops": e.Error.Message})
		return status, "application/json", out
	}
	var c struct {
		Choices []struct{ Message struct{ Content string } }
		Usage   json.RawMessage
	}
	_ = json.Unmarshal(body, &c)
	if len(c.Choices) == 0 {
		return status, "application/json", body // a token count
	}
	out, _ := json.Marshal(map[string]any{"said": c.Choices[0].Message.Content, "usage": c.Usage})
	return status, "application/json", out
}

func (x *echoExchange) Chunk(data []byte) []byte {
	var c struct {
		Choices []struct{ Delta struct{ Content string } }
		Usage   json.RawMessage
	}
	_ = json.Unmarshal(data, &c)
	if len(c.Choices) == 0 {
		x.usage = c.Usage
		return nil
	}
	if c.Choices[0].Delta.Content == "" {
		return nil
	}
	return protocol.SSE("said", []byte(c.Choices[0].Delta.Content))
}

func (x *echoExchange) Done() []byte { return protocol.SSE("done", x.usage) }

func (x *echoExchange) StreamError(body []byte) []byte {
	if body == nil {
		body = []byte("cut")
	}
	return protocol.SSE("oops", body)
}

func echoFixture(t *testing.T) (*fixture, *upstreamdouble.Double) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	f := newFixture(t, func(o *serve.Options) { o.Protocols = []protocol.Adapter{echoProtocol{}} }, d)
	return f, d
}

func echoBody(stream bool, say string) string {
	b, _ := json.Marshal(map[string]any{"model": "double-model", "say": say, "stream": stream})
	return string(b)
}

// TestSeamPlainAnswer: a protocol route runs the chat path (same auth by
// its own header, same settlement, metrics under its route) and the answer
// is translated, Content-Length included.
func TestSeamPlainAnswer(t *testing.T) {
	f, _ := echoFixture(t)
	resp := f.post(t, "/v1/echo", "", echoBody(false, "a b tokens=3"), "X-Api-Key", "good", "X-Request-Id", "e1")
	got := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(got)) {
		t.Fatalf("status %d, length %d: %s", resp.StatusCode, resp.ContentLength, got)
	}
	var out struct {
		Said  string
		Usage billing.Usage
	}
	if err := json.Unmarshal([]byte(got), &out); err != nil || out.Said != "t1 t2 t3 " {
		t.Fatalf("answer %s (%v)", got, err)
	}
	if u := f.rec.settledOnce(t, "e1"); u != (billing.Usage{PromptTokens: 3, CompletionTokens: 3}) {
		t.Fatalf("settled %+v", u)
	}
	if resp.Header.Get("X-Ratelimit-Remaining-Requests") != "41" {
		t.Errorf("ticket headers lost: %v", resp.Header)
	}
	if n := counterWith(t, f.gw, "llmctl_requests_total", "route", "echo"); n != 1 {
		t.Errorf("requests under route echo: %v", n)
	}
}

// TestSeamErrorsTranslated: every refusal, before or after the body is
// read, reaches the client in the protocol's shape with its status.
func TestSeamErrorsTranslated(t *testing.T) {
	f, _ := echoFixture(t)
	for _, c := range []struct {
		name, key, body string
		status          int
		want            string
	}{
		{"no key", "", echoBody(false, "x"), 401, "missing API key"},
		{"bad key", "nope", echoBody(false, "x"), 401, "invalid API key"},
		{"decode", "good", `{"model":"double-model"}`, 400, "say what?"},
		{"chat decode", "good", `{"say":"x"}`, 400, "model"},
		{"unknown model", "good", `{"model":"nope","say":"x"}`, 404, "does not exist"},
		{"scope", "scoped", echoBody(false, "x"), 403, "may not use"},
		{"upstream status", "good", echoBody(false, "x status=500"), 502, "backend failed"},
		{"stream upstream status", "good", echoBody(true, "x status=400"), 400, "double answers 400"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := f.post(t, "/v1/echo", "", c.body, "X-Api-Key", c.key)
			got := readAll(t, resp)
			var out struct{ Oops string }
			if resp.StatusCode != c.status || json.Unmarshal([]byte(got), &out) != nil || !strings.Contains(out.Oops, c.want) {
				t.Fatalf("status %d: %s; want %d with %q", resp.StatusCode, got, c.status, c.want)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/v1/echo", nil)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(got, "oops") {
		t.Fatalf("GET: %d %s", resp.StatusCode, got)
	}
}

// sseEvents returns "event:data" per SSE event of body.
func sseEvents(body string) []string {
	var out []string
	for ev := range strings.SplitSeq(strings.TrimSpace(body), "\n\n") {
		name, data := "", ""
		for line := range strings.SplitSeq(ev, "\n") {
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				data = v
			}
		}
		out = append(out, name+":"+data)
	}
	return out
}

// TestSeamStream: the stream is translated event by event; the usage chunk
// reaches the protocol though the client never asked for it; a stream cut
// mid-way ends with the protocol's error event and settles what was
// delivered.
func TestSeamStream(t *testing.T) {
	f, d := echoFixture(t)
	resp := f.post(t, "/v1/echo", "", echoBody(true, "a b tokens=2"), "X-Api-Key", "good", "X-Request-Id", "s1")
	got := sseEvents(readAll(t, resp))
	want := []string{"said:t1 ", "said:t2 ", `done:{"completion_tokens":2,"prompt_tokens":3,"total_tokens":5}`}
	if fmt.Sprint(got) != fmt.Sprint(want) || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events %q, want %q (%s)", got, want, resp.Header.Get("Content-Type"))
	}
	if rec, _ := d.Record("s1"); !rec.IncludeUsage {
		t.Error("include_usage not forced upstream")
	}
	if u := f.rec.settledOnce(t, "s1"); u != (billing.Usage{PromptTokens: 3, CompletionTokens: 2}) {
		t.Fatalf("settled %+v", u)
	}

	resp = f.post(t, "/v1/echo", "", echoBody(true, "a b tokens=5 fail-after=2"), "X-Api-Key", "good", "X-Request-Id", "s2")
	got = sseEvents(readAll(t, resp))
	if len(got) != 3 || got[0] != "said:t1 " || got[1] != "said:t2 " || !strings.HasPrefix(got[2], `oops:{"error"`) {
		t.Fatalf("cut stream events %q", got)
	}
	if u := f.rec.settledOnce(t, "s2"); u.CompletionTokens != 2 {
		t.Fatalf("cut stream settled %+v, want the 2 delivered tokens", u)
	}
}

// TestSeamCountTokens: a count needs a key and a model the key may use,
// and reaches no backend.
func TestSeamCountTokens(t *testing.T) {
	f, d := echoFixture(t)
	body := `{"model":"double-model","say":"hello","count":true}`
	resp := f.post(t, "/v1/echo", "", body, "X-Api-Key", "good")
	var c protocol.TokenCount
	if got := readAll(t, resp); resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(got), &c) != nil || c.PromptTokens <= 0 {
		t.Fatalf("count: %d %s", resp.StatusCode, got)
	}
	if resp = f.post(t, "/v1/echo", "", body, "X-Api-Key", "scoped"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("count out of scope: %d", resp.StatusCode)
	}
	if d.Requests() != 0 {
		t.Fatalf("a count reached the backend")
	}
}

type pathProtocol struct {
	echoProtocol
	path string
}

func (p pathProtocol) Paths() []string { return []string{p.path} }

// TestSeamPathsChecked: a protocol cannot take an OpenAI route or a path
// another protocol serves.
func TestSeamPathsChecked(t *testing.T) {
	for _, path := range []string{"/v1/chat/completions", "/v1/responses"} {
		_, err := serve.New(serve.Options{Auth: testAuth, Protocols: []protocol.Adapter{pathProtocol{path: path}}})
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v", path, err)
		}
	}
}
