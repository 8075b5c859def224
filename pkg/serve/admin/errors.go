package admin

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/llmctl/llmctl/pkg/serve/apierror"
)

// apiError is the gateway's OpenAI-shaped error (package apierror).
type apiError = apierror.Error

// OpenAI error types used here.
const (
	typeInvalidRequest = apierror.TypeInvalidRequest
	typeAuthentication = apierror.TypeAuthentication
	typePermission     = apierror.TypePermission
	typeNotFound       = apierror.TypeNotFound
	typeServer         = apierror.TypeServer
)

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Code: "invalid_request",
		Param: param, Message: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: typeNotFound, Code: "not_found", Message: fmt.Sprintf(format, args...)}
}

func internal() *apiError {
	return &apiError{Status: http.StatusInternalServerError, Type: typeServer, Code: "internal_error",
		Message: "internal error; the request id is in the X-Request-Id header"}
}

func writeError(w http.ResponseWriter, e *apiError) { apierror.Write(w, e) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"internal error","type":"server_error","param":null,"code":"internal_error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
