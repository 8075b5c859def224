// Package apierror is the one home of the OpenAI-shaped error answer,
// {"error":{"message","type","param","code"}}, shared by the gateway and
// its admin API (which the gateway imports, so it cannot live in either).
package apierror

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error is an error answered to the client in OpenAI's shape.
type Error struct {
	Status  int
	Type    string
	Code    string
	Param   string
	Message string
	Header  http.Header // extra response headers (Retry-After, x-ratelimit-*)
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// OpenAI error types.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypePermission     = "permission_error"
	TypeNotFound       = "not_found_error"
	TypeRateLimit      = "rate_limit_error"
	TypeQuota          = "insufficient_quota"
	TypeServer         = "server_error"
)

// Body renders the error object; param and code are null when empty, as
// OpenAI does.
func (e *Error) Body() []byte {
	type inner struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	in := inner{Message: e.Message, Type: e.Type}
	if e.Param != "" {
		in.Param = &e.Param
	}
	if e.Code != "" {
		in.Code = &e.Code
	}
	b, _ := json.Marshal(struct {
		Error inner `json:"error"`
	}{in})
	return b
}

// Write answers e: its headers, status and body.
func Write(w http.ResponseWriter, e *Error) {
	h := w.Header()
	for k, vs := range e.Header {
		h[k] = vs
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(e.Body(), '\n'))
}
