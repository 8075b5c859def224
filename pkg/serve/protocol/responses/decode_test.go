package responses

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefusals: what cannot be carried is a 400 naming the field.
func TestRefusals(t *testing.T) {
	for _, c := range []struct{ body, param string }{
		{``, ""},
		{`[]`, ""},
		{`{"input":"x"}`, "model"},
		{`{"model":"m"}`, "input"},
		{`{"model":"m","input":[]}`, "input"},
		{`{"model":"m","input":"x","foo":1}`, "foo"},
		{`{"model":"m","input":"x","previous_response_id":"resp_1"}`, "previous_response_id"},
		{`{"model":"m","input":"x","max_output_tokens":0}`, "max_output_tokens"},
		{`{"model":"m","input":"x","temperature":"hot"}`, "temperature"},
		{`{"model":"m","input":"x","tools":[{"type":"web_search"}]}`, "tools[0].type"},
		{`{"model":"m","input":"x","tools":[{"type":"function"}]}`, "tools[0].name"},
		{`{"model":"m","input":"x","tools":[{"type":"function","name":"f","cache":1}]}`, "tools[0].cache"},
		{`{"model":"m","input":"x","tool_choice":"sometimes"}`, "tool_choice"},
		{`{"model":"m","input":"x","tool_choice":{"type":"file_search"}}`, "tool_choice.type"},
		{`{"model":"m","input":"x","text":{"format":{"type":"grammar"}}}`, "text.format.type"},
		{`{"model":"m","input":"x","text":{"verbosity":"low"}}`, "text.verbosity"},
		{`{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"n"}}}`, "text.format.schema"},
		{`{"model":"m","input":"x","reasoning":{"summary":"verbose"}}`, "reasoning.summary"},
		{`{"model":"m","input":"x","truncation":"auto"}`, "truncation"},
		{`{"model":"m","input":"x","include":["message.output_text.logprobs"]}`, "include"},
		{`{"model":"m","input":"x","prompt_cache_key":7}`, "prompt_cache_key"},
		{`{"model":"m","input":"x","metadata":{"n":1}}`, "metadata"},
		{`{"model":"m","input":[{"type":"reasoning","summary":[]}]}`, "input[0].type"},
		{`{"model":"m","input":[{"role":"robot","content":"x"}]}`, "input[0].role"},
		{`{"model":"m","input":[{"role":"user"}]}`, "input[0].content"},
		{`{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}`, "input[0].content[0].type"},
		{`{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]}`, "input[0].content[0].file_id"},
		{`{"model":"m","input":[{"role":"assistant","content":[{"type":"input_image","image_url":"u"}]}]}`, "input[0].content[0].type"},
		{`{"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]}`, "input[0].call_id"},
		{`{"model":"m","input":[{"type":"function_call_output","output":"x"}]}`, "input[0].call_id"},
		{`{"model":"m","input":[{"type":"function_call_output","call_id":"c"}]}`, "input[0].output"},
	} {
		_, _, aerr := decode([]byte(c.body))
		if aerr == nil || aerr.Status != http.StatusBadRequest || aerr.Param != c.param {
			t.Errorf("%s: got %+v, want a 400 on %q", c.body, aerr, c.param)
			continue
		}
		if c.param != "" && !strings.Contains(aerr.Message, strings.SplitN(c.param, "[", 2)[0]) {
			t.Errorf("%s: message %q does not name %s", c.body, aerr.Message, c.param)
		}
	}
}

// TestStoreAccepted: store true or false is accepted (nothing is stored,
// and the response says store:false).
func TestStoreAccepted(t *testing.T) {
	for _, body := range []string{`{"model":"m","input":"x","store":true}`, `{"model":"m","input":"x","store":false}`} {
		x := newExchange("s")
		if _, aerr := x.Decode([]byte(body)); aerr != nil {
			t.Fatalf("%s: %v", body, aerr)
		}
		_, _, out := x.JSON(http.StatusOK, []byte(`{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]}`))
		var r struct{ Store *bool }
		if json.Unmarshal(out, &r) != nil || r.Store == nil || *r.Store {
			t.Fatalf("%s: %s", body, out)
		}
	}
}

// TestErrorsPassThrough: the Responses API's errors are OpenAI's shape.
func TestErrorsPassThrough(t *testing.T) {
	x := newExchange("e")
	body := []byte(`{"error":{"code":"rate_limit_exceeded","message":"no","param":null,"type":"rate_limit_error"}}`)
	status, ctype, out := x.JSON(http.StatusTooManyRequests, body)
	if status != http.StatusTooManyRequests || ctype != "application/json" || string(out) != string(body) {
		t.Fatalf("%d %s %s", status, ctype, out)
	}
	// In the client's terms: max_output_tokens, input.
	_, _, out = x.JSON(http.StatusPaymentRequired, []byte(`{"error":{"message":"lower max_tokens (or n) to lower its maximum cost","type":"insufficient_quota","param":"max_tokens","code":"insufficient_quota"}}`))
	if want := `{"error":{"code":"insufficient_quota","message":"lower max_output_tokens to lower its maximum cost","param":"max_output_tokens","type":"insufficient_quota"}}`; string(out) != want {
		t.Fatalf("402 %s", out)
	}
	_, _, out = x.JSON(http.StatusBadRequest, []byte(`{"error":{"message":"bad part","type":"invalid_request_error","param":"messages","code":null}}`))
	if !strings.Contains(string(out), `"param":"input"`) {
		t.Fatalf("400 %s", out)
	}
	if status, _, _ := x.JSON(http.StatusOK, []byte(`not json`)); status != http.StatusBadGateway {
		t.Fatalf("unreadable answer: %d", status)
	}
}

// FuzzDecode: any body is either refused with a 400 naming a field, or
// becomes a chat request that is valid JSON with a model and messages.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/request.json")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_text","text":"x"}]}]}`))
	f.Add([]byte(`{"model":"m","input":"x","tools":[{"type":"function","name":"f","parameters":null}],"tool_choice":"auto"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		x := newExchange("f")
		r, aerr := x.Decode(body)
		if aerr != nil {
			if aerr.Status != http.StatusBadRequest || aerr.Message == "" {
				t.Fatalf("refusal %+v", aerr)
			}
			return
		}
		var chat struct {
			Model    string            `json:"model"`
			Messages []json.RawMessage `json:"messages"`
		}
		if err := json.Unmarshal(r.Chat, &chat); err != nil || chat.Model == "" || len(chat.Messages) == 0 {
			t.Fatalf("chat body %s (%v) from %s", r.Chat, err, body)
		}
	})
}

// FuzzStream: whatever a backend streams, the events sent are well-formed
// JSON with consecutive sequence numbers, and the stream ends with exactly
// one response.completed / response.incomplete / error event.
func FuzzStream(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/upstream.sse")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b, false)
		}
	}
	f.Fuzz(func(t *testing.T, sse []byte, cut bool) {
		x := newExchange("f")
		var out []byte
		for _, line := range strings.Split(string(sse), "\n") {
			if data, ok := strings.CutPrefix(line, "data: "); ok && data != "[DONE]" {
				out = append(out, x.Chunk([]byte(data))...)
			}
		}
		if cut {
			out = append(out, x.StreamError(nil)...)
		} else {
			out = append(out, x.Done()...)
		}
		events := strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n")
		for i, ev := range events {
			name, data, ok := strings.Cut(ev, "\ndata: ")
			var v struct {
				Type           string `json:"type"`
				SequenceNumber *int64 `json:"sequence_number"`
			}
			if !ok || json.Unmarshal([]byte(data), &v) != nil || "event: "+v.Type != name || v.SequenceNumber == nil || *v.SequenceNumber != int64(i) {
				t.Fatalf("event %d malformed: %q", i, ev)
			}
			final := v.Type == "response.completed" || v.Type == "response.incomplete" || v.Type == "error"
			if final != (i == len(events)-1) {
				t.Fatalf("event %d %s out of place in %d events", i, v.Type, len(events))
			}
		}
	})
}

// TestCodexHintsAccepted: what Codex-style clients send on every request
// (encrypted reasoning, a reasoning summary, a cache key) is accepted; with
// no reasoning items returned, each is answered as asked.
func TestCodexHintsAccepted(t *testing.T) {
	body := `{"model":"m","input":"x","include":["reasoning.encrypted_content"],"reasoning":{"effort":"low","summary":"auto"},"prompt_cache_key":"sess-1","store":false}`
	x := newExchange("s")
	req, aerr := x.Decode([]byte(body))
	if aerr != nil {
		t.Fatal(aerr)
	}
	chat := string(req.Chat)
	if strings.Contains(chat, "prompt_cache_key") || strings.Contains(chat, "summary") || !strings.Contains(chat, `"reasoning_effort":"low"`) {
		t.Fatalf("chat body %s", chat)
	}
}
