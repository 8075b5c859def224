package serve

// One reading of a backend error, used by routing (retry, eject), metrics
// and the answer the client gets.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// verdict is what a backend error means. The zero reason means the backend
// is not at fault (a passed-through 4xx, or the request being cancelled).
type verdict struct {
	reason string // llmctl_upstream_errors_total's reason label, "" for none
	eject  bool   // passively eject the backend
	// retry: a failure before any answer that another backend may answer.
	retry bool
	// retryStream: a stream that broke this way before its first event may
	// be retried elsewhere (anything but a definite error answer).
	retryStream bool
	// fallback: a failure of the backend's (not a passed-through 4xx nor
	// a cancellation) after which a fallback model may answer.
	fallback bool
	answer   *apiError // what the client is told when no retry follows
}

// classify reads err, a backend's failure. It is pure: it looks at the
// error only, never at the request.
func classify(err error) verdict {
	var v verdict
	be, isBE := errors.AsType[*BackendError](err)
	switch {
	case isBE:
		v.reason = be.Reason
	case errors.Is(err, context.Canceled):
	case errors.Is(err, context.DeadlineExceeded):
		v.reason = ReasonTimeout
	default:
		v.reason = ReasonConnect
	}
	v.eject = v.reason != "" && v.reason != ReasonStream
	v.retry = errors.Is(err, ErrRetryable)
	v.retryStream = !isBE || be.Reason == ReasonStream
	v.fallback = v.reason != ""
	switch {
	case isBE && be.Reason == "" && be.Status >= 400 && be.Status < 500:
		// The backend rejected the request itself: pass its answer through.
		v.answer = upstreamRejected(be)
	case errors.Is(err, context.DeadlineExceeded):
		v.answer = &apiError{Status: http.StatusGatewayTimeout, Type: typeServer, Code: "backend_timeout",
			Message: "the backend did not answer in time"}
	default:
		v.answer = &apiError{Status: http.StatusBadGateway, Type: typeServer, Code: "backend_error",
			Message: "the backend failed to answer; try again"}
	}
	return v
}

// noBackend is the answer when no backend could be tried at all.
func noBackend(model string) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "no_backend",
		Message: fmt.Sprintf("no healthy backend serves the model %q right now", model)}
}
