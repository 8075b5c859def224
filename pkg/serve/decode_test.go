package serve

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	cases := []struct {
		name   string
		ep     Endpoint
		body   string
		param  string // expected error param; "-" = no error
		stream bool
		usage  bool
		maxTok int64
	}{
		{"chat", EndpointChat, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, "-", false, false, 0},
		{"chat stream usage", EndpointChat, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":7,"messages":[{"role":"user","content":"hi"}]}`, "-", true, true, 7},
		{"max_completion_tokens wins when larger", EndpointChat, `{"model":"m","max_tokens":3,"max_completion_tokens":9,"messages":[{"role":"user","content":"x"}]}`, "-", false, false, 9},
		{"completions", EndpointCompletions, `{"model":"m","prompt":["a","b"]}`, "-", false, false, 0},
		{"embeddings", EndpointEmbeddings, `{"model":"m","input":"x"}`, "-", false, false, 0},
		{"empty", EndpointChat, ``, "", false, false, 0},
		{"not json", EndpointChat, `{"model":`, "", false, false, 0},
		{"array", EndpointChat, `[1]`, "", false, false, 0},
		{"null", EndpointChat, `null`, "", false, false, 0},
		{"no model", EndpointChat, `{"messages":[{"role":"user"}]}`, "model", false, false, 0},
		{"model not string", EndpointChat, `{"model":3,"messages":[{"role":"user"}]}`, "model", false, false, 0},
		{"stream not bool", EndpointChat, `{"model":"m","stream":"yes","messages":[{"role":"user"}]}`, "stream", false, false, 0},
		{"stream_options without stream", EndpointChat, `{"model":"m","stream_options":{"include_usage":true},"messages":[{"role":"user"}]}`, "stream_options", false, false, 0},
		{"negative max_tokens", EndpointChat, `{"model":"m","max_tokens":-1,"messages":[{"role":"user"}]}`, "max_tokens", false, false, 0},
		{"no messages", EndpointChat, `{"model":"m"}`, "messages", false, false, 0},
		{"empty messages", EndpointChat, `{"model":"m","messages":[]}`, "messages", false, false, 0},
		{"message without role", EndpointChat, `{"model":"m","messages":[{"content":"x"}]}`, "messages[0].role", false, false, 0},
		{"no prompt", EndpointCompletions, `{"model":"m"}`, "prompt", false, false, 0},
		{"no input", EndpointEmbeddings, `{"model":"m","input":null}`, "input", false, false, 0},
		{"streamed embeddings", EndpointEmbeddings, `{"model":"m","input":"x","stream":true}`, "stream", false, false, 0},
		{"numeric prompt", EndpointCompletions, `{"model":"m","prompt":5}`, "", false, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cr, aerr := decodeRequest(c.ep, []byte(c.body))
			if c.param != "-" {
				if aerr == nil {
					t.Fatalf("decode(%s) succeeded, want a 400 on %q", c.body, c.param)
				}
				if aerr.Status != http.StatusBadRequest || aerr.Param != c.param {
					t.Fatalf("got %d param %q (%s), want 400 param %q", aerr.Status, aerr.Param, aerr.Message, c.param)
				}
				return
			}
			if aerr != nil {
				t.Fatalf("decode: %v", aerr)
			}
			if cr.stream != c.stream || cr.includeUsage != c.usage || cr.maxTokens != c.maxTok || cr.model != "m" {
				t.Fatalf("got stream=%v usage=%v max=%d model=%q", cr.stream, cr.includeUsage, cr.maxTokens, cr.model)
			}
		})
	}
}

func TestUpstreamBodyRewritesModelAndForcesUsage(t *testing.T) {
	cr, aerr := decodeRequest(EndpointChat, []byte(`{"model":"alias","stream":true,"temperature":0.5,"messages":[{"role":"user","content":"hi"}]}`))
	if aerr != nil {
		t.Fatal(aerr)
	}
	b, err := cr.upstreamBody("real")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["model"] != "real" || got["temperature"] != 0.5 {
		t.Fatalf("model/unknown field not carried: %s", b)
	}
	so, _ := got["stream_options"].(map[string]any)
	if so["include_usage"] != true {
		t.Fatalf("include_usage not forced: %s", b)
	}
	if cr.includeUsage {
		t.Fatal("client did not ask for usage")
	}
}

// FuzzDecodeRequest: any input either decodes into a request whose upstream
// body is a JSON object with the rewritten model, or is a 400 — never a panic.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		`{"model":"m","prompt":"x","max_tokens":1}`,
		`{"model":"m","input":["a","b"]}`,
		`{"model":"m","messages":null}`,
		`{"model":"\u0000","max_tokens":1e400}`,
		`{}`, `[]`, `"x"`, ``, `{"model":"m","prompt":{}}`,
	} {
		for _, ep := range []uint8{0, 1, 2} {
			f.Add(ep, []byte(s))
		}
	}
	eps := []Endpoint{EndpointChat, EndpointCompletions, EndpointEmbeddings}
	f.Fuzz(func(t *testing.T, epi uint8, body []byte) {
		ep := eps[int(epi)%len(eps)]
		cr, aerr := decodeRequest(ep, body)
		if aerr != nil {
			if aerr.Status != http.StatusBadRequest || aerr.Message == "" {
				t.Fatalf("bad error %+v", aerr)
			}
			var shape map[string]map[string]any
			if err := json.Unmarshal(aerr.Body(), &shape); err != nil || shape["error"]["message"] == nil {
				t.Fatalf("error body not OpenAI-shaped: %s", aerr.Body())
			}
			return
		}
		if cr.model == "" || cr.maxTokens < 0 || cr.promptEstimate < 1 {
			t.Fatalf("accepted invalid request: %+v", cr)
		}
		out, err := cr.upstreamBody("backend-model")
		if err != nil {
			t.Fatalf("upstreamBody: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("upstream body is not a JSON object: %v\n%s", err, out)
		}
		if m["model"] != "backend-model" {
			t.Fatalf("model not rewritten: %v", m["model"])
		}
		// Every other field reaches the backend unchanged.
		var in map[string]any
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatal(err)
		}
		for k, v := range in {
			if k == "model" || (cr.stream && k == "stream_options") {
				continue
			}
			if !reflect.DeepEqual(m[k], v) {
				t.Fatalf("field %q changed: %v → %v", k, v, m[k])
			}
		}
		if len(m) < len(in) {
			t.Fatalf("fields lost: %d → %d", len(in), len(m))
		}
	})
}

func TestInspectEvent(t *testing.T) {
	for _, c := range []struct {
		data             string
		content, usageOn bool
	}{
		{`{"choices":[{"index":0,"delta":{"content":"hi"}}]}`, true, false},
		{`{"choices":[{"index":0,"delta":{"content": "hi"}}]}`, true, false},
		{`{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`, false, false},
		{`{"choices":[{"index":0,"delta":{"content":null},"finish_reason":"stop"}]}`, false, false},
		{`{"choices":[{"index":0,"delta":{}}],"finish_reason":"stop"}`, false, false},
		{`{"choices":[{"index":0,"text":"x","finish_reason":null}]}`, true, false},
		{`{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}`, true, false},
		{`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}`, true, false},
		{`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}`, false, true},
		{`{"choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"prompt_tokens":1}}`, true, false},
		{`{"choices":[{"index":0,"delta":{"content":"say \"content\":\"\""}}]}`, true, false},
	} {
		content, usageOnly := inspectEvent([]byte(c.data))
		if content != c.content || usageOnly != c.usageOn {
			t.Errorf("%s: content=%v usageOnly=%v", c.data, content, usageOnly)
		}
	}
}

// TestDecodeErrorsSpeakJSON: a wrongly typed field is described by the
// field and the JSON types, never by the Go types it is decoded into.
func TestDecodeErrorsSpeakJSON(t *testing.T) {
	for body, want := range map[string]string{
		`{"model":5,"messages":[]}`:                        "invalid type for model: expected a string, got a number",
		`{"model":"m","messages":[{"role":1}]}`:            "invalid type for messages: role: expected a string, got a number",
		`{"model":"m","messages":{}}`:                      "expected a list, got an object",
		`{"model":"m","max_tokens":"9"}`:                   "invalid type for max_tokens: expected an integer, got a string",
		`{"model":"m","stream":true,"stream_options":[1]}`: "stream_options must be an object: expected an object, got an array",
		`{"model":"m",}`:                                   "invalid JSON at byte 14",
	} {
		_, aerr := decodeRequest(EndpointChat, []byte(body))
		if aerr == nil {
			t.Fatalf("%s: accepted", body)
		}
		if !strings.Contains(aerr.Message, want) {
			t.Errorf("%s: %q, want %q", body, aerr.Message, want)
		}
		for _, goWord := range []string{"Go ", "struct", "int64", "json.RawMessage", "map["} {
			if strings.Contains(aerr.Message, goWord) {
				t.Errorf("%s: %q speaks Go (%q)", body, aerr.Message, goWord)
			}
		}
	}
}
