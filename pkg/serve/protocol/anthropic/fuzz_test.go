package anthropic

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecodeMessages: any body either is refused with a named 400 or
// becomes a chat body that is a JSON object with the model and messages.
func FuzzDecodeMessages(f *testing.F) {
	ins, _ := filepath.Glob("testdata/requests/*.in.json")
	for _, in := range ins {
		if b, err := os.ReadFile(in); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"x","content":null}]}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, decode := range []func([]byte) (*Request, *RequestError){DecodeMessages, DecodeCountTokens} {
			req, rerr := decode(body)
			if rerr != nil {
				if rerr.Message == "" {
					t.Fatalf("refusal without a message for %q", body)
				}
				continue
			}
			var chat struct {
				Model    string            `json:"model"`
				Messages []json.RawMessage `json:"messages"`
			}
			if err := json.Unmarshal(req.Chat, &chat); err != nil {
				t.Fatalf("chat body is not JSON: %v: %s", err, req.Chat)
			}
			if chat.Model == "" || chat.Model != req.Model || len(chat.Messages) == 0 {
				t.Fatalf("chat body lost the model or messages: %s", req.Chat)
			}
		}
	})
}

// FuzzStreamWriter: whatever chat SSE bytes arrive, the translated stream
// is well-formed: every event is "event: NAME" and "data: JSON" whose type
// is NAME, it begins with message_start (or error), block starts and stops pair up
// by index, and nothing follows message_stop or error.
func FuzzStreamWriter(f *testing.F) {
	ins, _ := filepath.Glob("testdata/streams/*.in.sse")
	for _, in := range ins {
		if b, err := os.ReadFile(in); err == nil {
			f.Add(b, true)
		}
	}
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":3,\"function\":{\"arguments\":\"x\"}}]}}]}\n\n"), false)
	f.Fuzz(func(t *testing.T, in []byte, done bool) {
		var out bytes.Buffer
		sw := NewStreamWriter(&out, goldenRequest(), "msg_f", 1)
		if _, err := sw.Write(in); err != nil {
			t.Fatal(err)
		}
		if done {
			_ = sw.done()
		} else {
			_ = sw.Fail(ErrAPI, "cut")
		}
		events := strings.Split(strings.TrimSuffix(out.String(), "\n\n"), "\n\n")
		open := map[int]bool{}
		for i, ev := range events {
			name, data, ok := strings.Cut(ev, "\ndata: ")
			name, named := strings.CutPrefix(name, "event: ")
			var v struct {
				Type  string `json:"type"`
				Index *int   `json:"index"`
			}
			if !ok || !named || json.Unmarshal([]byte(data), &v) != nil || v.Type != name {
				t.Fatalf("event %d malformed: %q", i, ev)
			}
			// An error may come first: a stream that broke before its
			// first chunk has no message to start.
			if (i == 0) != (name == "message_start") && !(i == 0 && name == "error") {
				t.Fatalf("event %d is %s", i, name)
			}
			if (name == "message_stop" || name == "error") && i != len(events)-1 {
				t.Fatalf("%s is not last: %q", name, events[i+1:])
			}
			switch name {
			case "content_block_start":
				if open[*v.Index] {
					t.Fatalf("block %d started twice", *v.Index)
				}
				open[*v.Index] = true
			case "content_block_stop":
				if !open[*v.Index] {
					t.Fatalf("block %d stopped before it started", *v.Index)
				}
			case "content_block_delta":
				if v.Index == nil || !open[*v.Index] {
					t.Fatalf("delta for a block never started: %s", data)
				}
			}
		}
	})
}
