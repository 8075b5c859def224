package batch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// goTerms are words of Go's own error texts that must never reach a user.
var goTerms = []string{"Go value", "unmarshal", "map[", "RawMessage", "struct", "[]byte", "int64", "json:"}

// TestBatchBadInputFiles uploads malformed JSONL files through the real
// HTTP API with openai-go: each batch fails at validating with an error
// that names the line and says what is wrong in JSON's and the API's terms
// (or the upload is refused, where OpenAI refuses at upload); no line
// reaches the backend and the ledger holds nothing but the tenant's credit.
func TestBatchBadInputFiles(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"SQLite": sqliteDSN, "PostgreSQL": pgDSN} {
		t.Run(name, func(t *testing.T) { testBadInputFiles(t, dsn(t)) })
	}
}

func testBadInputFiles(t *testing.T, dsn string) {
	lim := batch.Limits{MaxFileBytes: 32 << 10, MaxLineBytes: 2000, MaxLines: 5, MaxErrors: 10}
	e := newEnv(t, dsn, lim)
	defer e.startWorker()()
	c := e.client(e.keyA)
	ok := chatLine("ok", "double-model", "x")
	// with replaces the first old in a good line.
	with := func(id, old, repl string) string {
		return strings.Replace(chatLine(id, "double-model", "x"), old, repl, 1)
	}
	for _, tc := range []struct {
		name, input, code, param string
		line                     int64
		says                     string // the message contains this
	}{
		{"truncated line", ok + "\n" + `{"custom_id": "b", "method": "PO` + "\n", "invalid_json_line", "", 2, "ends too early"},
		{"truncated last line", ok + "\n" + chatLine("b", "double-model", "y") + "\n" + chatLine("c", "double-model", "z")[:40], "invalid_json_line", "", 3, "ends too early"},
		{"two objects on a line", ok + " " + chatLine("b", "double-model", "y") + "\n", "invalid_json_line", "", 1, "not valid JSON at character"},
		{"line is an array", ok + "\n[1, 2]\n", "invalid_json_line", "", 2, "a JSON array, not an object"},
		{"line is a string", `"hello"` + "\n", "invalid_json_line", "", 1, "a JSON string, not an object"},
		{"line is null", ok + "\nnull\n", "invalid_json_line", "", 2, "a JSON null, not an object"},
		{"custom_id a number", with("a", `"custom_id":"a"`, `"custom_id":7`), "invalid_value", "custom_id", 1, "custom_id must be a string, not number"},
		{"custom_id null", with("a", `"custom_id":"a"`, `"custom_id":null`), "invalid_value", "custom_id", 1, "custom_id must be a string, not null"},
		{"custom_id empty", with("a", `"custom_id":"a"`, `"custom_id":""`), "invalid_value", "custom_id", 1, "1 to 512 characters"},
		{"custom_id too long", with("a", `"custom_id":"a"`, `"custom_id":"`+strings.Repeat("i", 513)+`"`), "invalid_value", "custom_id", 1, "1 to 512 characters"},
		{"custom_id missing", with("a", `"custom_id":"a",`, ``), "missing_required_parameter", "custom_id", 1, "custom_id is missing"},
		{"method GET", with("a", `"method":"POST"`, `"method":"GET"`), "invalid_value", "method", 1, "only POST"},
		{"method an object", with("a", `"method":"POST"`, `"method":{"verb":"POST"}`), "invalid_value", "method", 1, "method must be a string, not object"},
		{"url a boolean", ok + "\n" + with("b", `"url":"/v1/chat/completions"`, `"url":true`), "invalid_value", "url", 2, "url must be a string, not boolean"},
		{"url of another endpoint", with("a", `/v1/chat/completions`, `/v1/embeddings`), "invalid_url", "url", 1, "the batch's endpoint is /v1/chat/completions"},
		{"body missing", `{"custom_id":"a","method":"POST","url":"/v1/chat/completions"}`, "missing_required_parameter", "body", 1, "body is missing"},
		{"body a string", `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":"{\"model\":\"double-model\"}"}`, "invalid_value", "body", 1, "body must be a JSON object (the request to /v1/chat/completions), not string"},
		{"body an array", `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":[]}`, "invalid_value", "body", 1, "not array"},
		{"model missing", with("a", `,"model":"double-model"`, ``), "missing_required_parameter", "body.model", 1, "body.model is missing"},
		{"model a number", with("a", `"model":"double-model"`, `"model":4`), "invalid_value", "body.model", 1, "not number"},
		{"model the key may not use", ok + "\n" + chatLine("b", "gpt-4o", "y"), "model_not_allowed", "body.model", 2, `may not use the model "gpt-4o"`},
		{"unknown field", with("a", `"method"`, `"priority":1,"method"`), "unknown_parameter", "priority", 1, `unknown field "priority"`},
		{"stream true", with("a", `"max_tokens"`, `"stream":true,"max_tokens"`), "invalid_value", "body.stream", 1, "cannot be streamed"},
		{"stream a string", with("a", `"max_tokens"`, `"stream":"yes","max_tokens"`), "invalid_value", "body.stream", 1, "cannot be streamed"},
		{"a field twice", with("a", `"method":"POST"`, `"method":"POST","method":"GET"`), "invalid_json_line", "method", 1, `the field "method" is given twice`},
		{"body.model twice", with("a", `"max_tokens"`, `"model":[],"max_tokens"`), "invalid_value", "body.model", 1, "body.model is given twice"},
		{"duplicate custom_id", ok + "\n" + chatLine("b", "double-model", "y") + "\n" + chatLine("ok", "double-model", "z"), "duplicate_custom_id", "custom_id", 3, "already used on line 1"},
		{"line over the per-line limit", ok + "\n" + chatLine("big", "double-model", strings.Repeat("w ", 1500)), "request_too_large", "body", 2, "above the limit of 2000 bytes"},
		{"NUL bytes", ok + "\n" + strings.Replace(chatLine("b", "double-model", "y"), "y", "\x00", 1), "invalid_json_line", "", 2, "binary data (a NUL byte"},
		{"binary", "\x89PNG\r\n\x1a\n\x00\x00", "invalid_json_line", "", 1, "not UTF-8 text"},
		{"invalid UTF-8", ok + "\n" + strings.Replace(chatLine("b", "double-model", "y"), "y", "caf\xe9", 1), "invalid_json_line", "", 2, "not UTF-8 text (an invalid byte at character"},
		{"empty file", "", "empty_file", "", 0, "no requests"},
		{"only blank lines", "\n\n", "invalid_json_line", "", 1, "line 1 is empty"},
		{"blank line between", ok + "\n\n" + chatLine("b", "double-model", "y"), "invalid_json_line", "", 2, "line 2 is empty"},
		{"byte order mark", "\xef\xbb\xbf" + ok, "invalid_json_line", "", 1, "byte order mark"},
		// CRLF line ends are read as OpenAI does (as line ends), so the
		// bad line is still named by its number.
		{"CRLF, bad second line", ok + "\r\n" + `{"custom_id":` + "\r\n", "invalid_json_line", "", 2, "ends too early"},
		{"more lines than allowed", lines(6), "too_many_requests", "", 6, "more than 5 lines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := poll(t, c, create(t, c, upload(t, c, tc.input).ID).ID)
			if b.Status != openai.BatchStatusFailed || b.FailedAt == 0 || len(b.Errors.Data) == 0 || b.RequestCounts.Total != 0 {
				t.Fatalf("status %s counts %+v errors %+v", b.Status, b.RequestCounts, b.Errors)
			}
			got := b.Errors.Data[0]
			if got.Code != tc.code || got.Param != tc.param || got.Line != tc.line || !strings.Contains(got.Message, tc.says) ||
				(tc.line > 0 && !strings.Contains(got.Message, fmt.Sprintf("line %d", tc.line))) {
				t.Fatalf("error %+v, want code %s param %q on line %d saying %q", got, tc.code, tc.param, tc.line, tc.says)
			}
			t.Log(got.Message)
			for _, w := range goTerms {
				if strings.Contains(got.Message, w) {
					t.Fatalf("message %q speaks Go (%q)", got.Message, w)
				}
			}
		})
	}
	// A file over the per-file limit is refused at upload, as OpenAI does.
	_, err := c.Files.New(context.Background(), openai.FileNewParams{Purpose: openai.FilePurposeBatch,
		File: openai.File(bytes.NewReader([]byte(strings.Repeat(ok+"\n", 400))), "big.jsonl", "application/jsonl")})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusRequestEntityTooLarge || apiErr.Code != "file_too_large" ||
		!strings.Contains(apiErr.Message, "32768 bytes") {
		t.Fatalf("upload over the per-file limit: %v", err)
	}
	// A multipart upload cut short is refused in the user's terms.
	cut := "--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\r\n" + ok
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/files", strings.NewReader(cut))
	req.Header.Set("Authorization", "Bearer "+e.keyA)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("cut short")) || bytes.Contains(body, []byte("NextPart")) {
		t.Fatalf("a cut multipart upload: %d %s", resp.StatusCode, body)
	}
	// Nothing reached the backend; the ledger holds only the credit: no
	// hold, no charge, no release.
	if e.double.Requests() != 0 {
		t.Fatalf("%d requests reached the backend", e.double.Requests())
	}
	e.debits(t) // waits for the ledger to drain
	es, err := e.ls.Entries(context.Background(), ledger.Filter{TenantID: e.tenantA})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Kind != ledger.KindCredit {
		t.Fatalf("ledger after bad input: %+v", es)
	}
}

// lines is n valid chat lines.
func lines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintln(&b, chatLine(fmt.Sprintf("l%d", i), "double-model", "x"))
	}
	return b.String()
}
