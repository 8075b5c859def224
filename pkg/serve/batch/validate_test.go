package batch_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// FuzzValidate: any input file either yields requests (unique custom ids,
// increasing line numbers, JSON object bodies within the limit, allowed
// models) or errors (at least one, at most MaxErrors, each naming a line
// of the file), never both, never a panic.
func FuzzValidate(f *testing.F) {
	f.Add([]byte(chatLine("a", "double-model", "x") + "\n" + chatLine("b", "double-model", "y") + "\n"))
	f.Add([]byte(chatLine("a", "double-model", "x") + "\n" + chatLine("a", "double-model", "y")))
	f.Add([]byte("{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"m\",\"stream\":true}}"))
	f.Add([]byte("{\"custom_id\":1}\n\n\x00\xff"))
	f.Add([]byte("\r\n\r\n"))
	lim := batch.Limits{MaxFileBytes: 1 << 16, MaxLineBytes: 512, MaxLines: 20, MaxErrors: 5}
	allows := func(m string) bool { return m != "forbidden" }
	f.Fuzz(func(t *testing.T, content []byte) {
		reqs, errs := batch.Validate(content, "/v1/chat/completions", lim, allows)
		lines := int64(bytes.Count(content, []byte("\n")) + 1)
		if (len(reqs) == 0) == (len(errs) == 0) {
			t.Fatalf("%d requests and %d errors", len(reqs), len(errs))
		}
		if len(errs) > lim.MaxErrors {
			t.Fatalf("%d errors, limit %d", len(errs), lim.MaxErrors)
		}
		for _, e := range errs {
			if e.Line < 0 || e.Line > lines || e.Code == "" || e.Message == "" {
				t.Fatalf("error %+v in a file of %d lines", e, lines)
			}
		}
		seen := map[string]bool{}
		last := int64(0)
		for _, r := range reqs {
			if seen[r.CustomID] || r.CustomID == "" || r.LineNo <= last || r.LineNo > lines {
				t.Fatalf("request %+v (after line %d)", r, last)
			}
			seen[r.CustomID], last = true, r.LineNo
			var body struct {
				Model  string `json:"model"`
				Stream *bool  `json:"stream"`
			}
			if len(r.Body) > 512 || json.Unmarshal(r.Body, &body) != nil || !allows(body.Model) || body.Model == "" || (body.Stream != nil && *body.Stream) {
				t.Fatalf("accepted body %s", r.Body)
			}
		}
		if len(reqs) > lim.MaxLines {
			t.Fatalf("%d requests, limit %d", len(reqs), lim.MaxLines)
		}
	})
}
