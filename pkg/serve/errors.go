package serve

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/llmctl/llmctl/pkg/serve/apierror"
)

// ErrRetryable marks a backend failure that happened before anything was
// sent to the client (connect error, 5xx, 429): another backend may be tried.
var ErrRetryable = errors.New("retryable backend error")

// Upstream failure reasons, the `reason` label of llmctl_upstream_errors_total.
const (
	ReasonConnect = "connect"
	ReasonTimeout = "timeout"
	Reason5xx     = "status_5xx"
	Reason429     = "status_429"
	ReasonStream  = "stream"
)

// BackendError is a failure talking to one backend. Retryable ones wrap
// ErrRetryable (errors.Is); a non-retryable one with Status 4xx carries the
// upstream's own error Body, which the gateway passes through unchanged.
type BackendError struct {
	Backend   string
	Reason    string // one of the Reason* constants, "" for a passed-through 4xx
	Status    int    // upstream HTTP status, 0 when none was received
	Body      []byte // upstream error body (4xx pass-through)
	Retryable bool
	Err       error
}

func (e *BackendError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("backend %s: status %d: %v", e.Backend, e.Status, e.Err)
	}
	return fmt.Sprintf("backend %s: %s: %v", e.Backend, e.Reason, e.Err)
}

func (e *BackendError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrRetryable) true for retryable failures.
func (e *BackendError) Is(target error) bool { return target == ErrRetryable && e.Retryable }

// apiError is an error answered to the client in OpenAI's shape.
type apiError = apierror.Error

// OpenAI error types.
const (
	typeInvalidRequest = apierror.TypeInvalidRequest
	typeAuthentication = apierror.TypeAuthentication
	typePermission     = apierror.TypePermission
	typeNotFound       = apierror.TypeNotFound
	typeRateLimit      = apierror.TypeRateLimit
	typeQuota          = apierror.TypeQuota
	typeServer         = apierror.TypeServer
)

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Code: "invalid_request",
		Param: param, Message: fmt.Sprintf(format, args...)}
}

func writeAPIError(w http.ResponseWriter, e *apiError) { apierror.Write(w, e) }
