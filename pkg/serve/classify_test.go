package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// TestClassify pins the one reading of a backend error: the metric reason,
// ejection, both retry rules and the client's answer.
func TestClassify(t *testing.T) {
	be := func(reason string, status int, retryable bool) error {
		return &BackendError{Backend: "b", Reason: reason, Status: status, Retryable: retryable, Err: errors.New("x"),
			Body: []byte(`{"error":{"message":"bad field"}}`)}
	}
	cases := []struct {
		name                      string
		err                       error
		reason                    string
		eject, retry, retryStream bool
		status                    int
		code                      string
	}{
		{"connect", be(ReasonConnect, 0, true), ReasonConnect, true, true, false, 502, "backend_error"},
		{"5xx", be(Reason5xx, 503, true), Reason5xx, true, true, false, 502, "backend_error"},
		{"429", be(Reason429, 429, true), Reason429, true, true, false, 502, "backend_error"},
		{"wrapped 5xx", fmt.Errorf("do: %w", be(Reason5xx, 500, true)), Reason5xx, true, true, false, 502, "backend_error"},
		{"passed-through 4xx", be("", 400, false), "", false, false, false, 400, "invalid_request"},
		{"stream cut", be(ReasonStream, 0, false), ReasonStream, false, false, true, 502, "backend_error"},
		{"timeout", context.DeadlineExceeded, ReasonTimeout, true, false, true, 504, "backend_timeout"},
		{"canceled", context.Canceled, "", false, false, true, 502, "backend_error"},
		{"plain error", io.ErrUnexpectedEOF, ReasonConnect, true, false, true, 502, "backend_error"},
		{"retryable plain", fmt.Errorf("%w: closed", ErrRetryable), ReasonConnect, true, true, true, 502, "backend_error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := classify(c.err)
			if v.reason != c.reason || v.eject != c.eject || v.retry != c.retry || v.retryStream != c.retryStream {
				t.Errorf("classify = reason %q eject %v retry %v retryStream %v; want %q %v %v %v",
					v.reason, v.eject, v.retry, v.retryStream, c.reason, c.eject, c.retry, c.retryStream)
			}
			if v.answer == nil || v.answer.Status != c.status || v.answer.Code != c.code {
				t.Fatalf("answer = %+v, want %d %s", v.answer, c.status, c.code)
			}
			if c.code == "invalid_request" && v.answer.Message != "bad field" {
				t.Errorf("message = %q, want the upstream's", v.answer.Message)
			}
			if c.status == http.StatusBadGateway && v.answer.Type != typeServer {
				t.Errorf("type = %q", v.answer.Type)
			}
		})
	}
}

// TestUpstreamRejectedPassesThrough: a backend's refusal reaches the client
// with the backend's own message, param and code (the embedded engine names
// the field it refused), and a body that is not an OpenAI error still says
// the status.
func TestUpstreamRejectedPassesThrough(t *testing.T) {
	cases := []struct {
		body             string
		msg, param, code string
	}{
		{`{"error":{"message":"n > 1 is not supported","type":"invalid_request_error","param":"n","code":null}}`, "n > 1 is not supported", "n", "invalid_request"},
		{`{"error":{"message":"too long","param":"messages","code":"context_length_exceeded"}}`, "too long", "messages", "context_length_exceeded"},
		{`<html>bad</html>`, "the backend rejected the request with status 422", "", "invalid_request"},
	}
	for _, c := range cases {
		e := classify(&BackendError{Backend: "b", Status: 422, Err: errors.New("x"), Body: []byte(c.body)}).answer
		if e.Status != 422 || e.Type != typeInvalidRequest || e.Message != c.msg || e.Param != c.param || e.Code != c.code {
			t.Errorf("%s: got %+v, want message %q param %q code %q", c.body, e, c.msg, c.param, c.code)
		}
	}
}
