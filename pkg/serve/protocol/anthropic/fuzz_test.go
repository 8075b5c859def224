package anthropic

import (
	"encoding/json"
	"os"
	"path/filepath"
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
