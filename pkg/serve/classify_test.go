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
		{"passed-through 4xx", be("", 400, false), "", false, false, false, 400, "upstream_rejected"},
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
			if c.code == "upstream_rejected" && v.answer.Message != "bad field" {
				t.Errorf("message = %q, want the upstream's", v.answer.Message)
			}
			if c.status == http.StatusBadGateway && v.answer.Type != typeServer {
				t.Errorf("type = %q", v.answer.Type)
			}
		})
	}
}
