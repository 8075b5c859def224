package batch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Endpoints a batch may call.
var endpoints = []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"}

// Limits bound a batch's input file.
type Limits struct {
	MaxFileBytes int64 // the whole file
	MaxLineBytes int64 // one line's body (the gateway's request limit)
	MaxLines     int   // lines per batch
	MaxErrors    int   // validation errors reported
}

// Request is one valid input line.
type Request struct {
	LineNo   int64 // 1-based, as errors name it
	CustomID string
	Body     json.RawMessage
}

// LineError is one validation error, in OpenAI's batch error shape.
type LineError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
	Line    int64  `json:"line,omitempty"`
}

// lineFields are the fields of an input line; every other is refused.
var lineFields = []string{"custom_id", "method", "url", "body"}

// Validate checks every line of a batch input file for endpoint: a JSON
// object with exactly custom_id (unique), method POST, url = endpoint and a
// body object whose model the caller may use (allows), within lim. It
// returns the requests, or the errors (at most lim.MaxErrors) naming lines.
func Validate(content []byte, endpoint string, lim Limits, allows func(model string) bool) ([]Request, []LineError) {
	var errs []LineError
	add := func(line int64, code, param, format string, args ...any) bool {
		errs = append(errs, LineError{Code: code, Param: param, Line: line, Message: fmt.Sprintf(format, args...)})
		return len(errs) < max(lim.MaxErrors, 1)
	}
	if lim.MaxFileBytes > 0 && int64(len(content)) > lim.MaxFileBytes {
		add(0, "file_too_large", "", "the input file is %d bytes, above the limit of %d bytes", len(content), lim.MaxFileBytes)
		return nil, errs
	}
	var reqs []Request
	seen := map[string]int64{}
	rest := content
	for n := int64(1); len(rest) > 0; n++ {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 {
			if len(rest) == 0 {
				break // the file's last newline
			}
			if !add(n, "invalid_json_line", "", "line %d is empty; every line must be one JSON request", n) {
				return nil, errs
			}
			continue
		}
		if lim.MaxLines > 0 && len(reqs)+len(errs) >= lim.MaxLines {
			add(n, "too_many_requests", "", "line %d: the input file has more than %d lines, the most one batch may hold", n, lim.MaxLines)
			return nil, errs
		}
		r, e := validateLine(n, line, endpoint, lim, allows)
		if e == nil {
			if first, dup := seen[r.CustomID]; dup {
				e = &LineError{Code: "duplicate_custom_id", Param: "custom_id", Line: n,
					Message: fmt.Sprintf("line %d: custom_id %q is already used on line %d; each must be unique", n, r.CustomID, first)}
			}
		}
		if e != nil {
			errs = append(errs, *e)
			if len(errs) >= max(lim.MaxErrors, 1) {
				return nil, errs
			}
			continue
		}
		seen[r.CustomID] = n
		reqs = append(reqs, r)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if len(reqs) == 0 {
		return nil, []LineError{{Code: "empty_file", Message: "the input file has no requests"}}
	}
	return reqs, nil
}

// validateLine checks one non-empty line.
func validateLine(n int64, line []byte, endpoint string, lim Limits, allows func(string) bool) (Request, *LineError) {
	fail := func(code, param, format string, args ...any) (Request, *LineError) {
		return Request{}, &LineError{Code: code, Param: param, Line: n, Message: fmt.Sprintf("line %d: ", n) + fmt.Sprintf(format, args...)}
	}
	if n == 1 && bytes.HasPrefix(line, utf8BOM) {
		return fail("invalid_json_line", "", "the file starts with a byte order mark (BOM); save it as UTF-8 without a BOM")
	}
	if i := bytes.IndexByte(line, 0); i >= 0 {
		return fail("invalid_json_line", "", "binary data (a NUL byte at character %d); every line must be one JSON request in UTF-8 text", i+1)
	}
	if i := invalidUTF8At(line); i >= 0 {
		return fail("invalid_json_line", "", "not UTF-8 text (an invalid byte at character %d); every line must be one JSON request", i+1)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil || fields == nil {
		return fail("invalid_json_line", "", "%s; every line must be one JSON object {\"custom_id\", \"method\", \"url\", \"body\"}", notAnObject(line, err))
	}
	if k, dup := duplicateKey(line); dup {
		return fail("invalid_json_line", k, "the field %q is given twice; give each field once", k)
	}
	for k := range fields {
		if !slices.Contains(lineFields, k) {
			return fail("unknown_parameter", k, "unknown field %q; a line has only custom_id, method, url and body", k)
		}
	}
	str := func(name string) (string, *LineError) {
		raw, ok := fields[name]
		if !ok {
			_, e := fail("missing_required_parameter", name, "%s is missing", name)
			return "", e
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || string(raw) == "null" {
			_, e := fail("invalid_value", name, "%s must be a string, not %s", name, jsonKind(raw))
			return "", e
		}
		return s, nil
	}
	id, e := str("custom_id")
	if e != nil {
		return Request{}, e
	}
	if id == "" || len(id) > 512 {
		return fail("invalid_value", "custom_id", "custom_id must be 1 to 512 characters")
	}
	method, e := str("method")
	if e != nil {
		return Request{}, e
	}
	if method != "POST" {
		return fail("invalid_value", "method", "method is %q; only POST is supported", method)
	}
	url, e := str("url")
	if e != nil {
		return Request{}, e
	}
	if url != endpoint {
		return fail("invalid_url", "url", "url is %q but the batch's endpoint is %s; every line must call it", url, endpoint)
	}
	body, ok := fields["body"]
	if !ok {
		return fail("missing_required_parameter", "body", "body is missing")
	}
	if lim.MaxLineBytes > 0 && int64(len(body)) > lim.MaxLineBytes {
		return fail("request_too_large", "body", "body is %d bytes, above the limit of %d bytes", len(body), lim.MaxLineBytes)
	}
	var b map[string]json.RawMessage
	if err := json.Unmarshal(body, &b); err != nil || b == nil {
		return fail("invalid_value", "body", "body must be a JSON object (the request to %s), not %s", endpoint, jsonKind(body))
	}
	if k, dup := duplicateKey(body); dup {
		return fail("invalid_value", "body."+k, "body.%s is given twice; give each field once", k)
	}
	var model string
	raw, ok := b["model"]
	if !ok {
		return fail("missing_required_parameter", "body.model", "body.model is missing; name the model to call")
	}
	if json.Unmarshal(raw, &model) != nil || model == "" {
		return fail("invalid_value", "body.model", "body.model must be a model name (a non-empty string), not %s", jsonKind(raw))
	}
	if !allows(model) {
		return fail("model_not_allowed", "body.model", "this API key may not use the model %q", model)
	}
	if raw, ok := b["stream"]; ok {
		var stream bool
		if json.Unmarshal(raw, &stream) != nil || stream {
			return fail("invalid_value", "body.stream", "body.stream is %s; a batch line cannot be streamed, remove stream or set it to false", raw)
		}
	}
	return Request{LineNo: n, CustomID: id, Body: body}, nil
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// invalidUTF8At is the offset of line's first byte that is not UTF-8, or -1.
func invalidUTF8At(line []byte) int {
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRune(line[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// notAnObject says, in JSON's terms, why line is not one JSON object.
func notAnObject(line []byte, err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		if se.Offset >= int64(len(bytes.TrimRight(line, " \t"))) {
			return "the JSON ends too early (a truncated line?)"
		}
		return fmt.Sprintf("not valid JSON at character %d", se.Offset)
	}
	if err != nil && !json.Valid(line) {
		return "not valid JSON"
	}
	return "a JSON " + jsonKind(line) + ", not an object"
}

// duplicateKey is a key the JSON object obj (already known to be valid)
// has twice at its top level. Go's decoder keeps the last of them, a
// backend may keep the first: the line would not mean one thing.
func duplicateKey(obj []byte) (string, bool) {
	d := json.NewDecoder(bytes.NewReader(obj))
	if _, err := d.Token(); err != nil { // {
		return "", false
	}
	seen := map[string]bool{}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return "", false
		}
		k, _ := t.(string)
		if seen[k] {
			return k, true
		}
		seen[k] = true
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return "", false
		}
	}
	return "", false
}

// jsonKind names a JSON value's type as JSON calls it.
func jsonKind(raw []byte) string {
	v := bytes.TrimSpace(raw)
	if len(v) == 0 {
		return "empty"
	}
	switch v[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// errorSummary joins errors for logs.
func errorSummary(errs []LineError) string {
	var b strings.Builder
	for i, e := range errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Message)
	}
	return b.String()
}
