package anthropic

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
)

// Anthropic's error types (docs "Errors"; anthropic-sdk-go ErrorObjectUnion).
const (
	ErrInvalidRequest = "invalid_request_error"
	ErrAuthentication = "authentication_error"
	ErrBilling        = "billing_error"
	ErrPermission     = "permission_error"
	ErrNotFound       = "not_found_error"
	ErrTooLarge       = "request_too_large"
	ErrRateLimit      = "rate_limit_error"
	ErrTimeout        = "timeout_error"
	ErrAPI            = "api_error"
	ErrOverloaded     = "overloaded_error"
)

// ErrorType is the Anthropic error type for an HTTP status the gateway
// answers. The status itself is kept: clients retry by status (429, 5xx),
// and the gateway's 402 (quota) and 503 (busy, no healthy backend) mean
// what Anthropic's billing_error and overloaded_error mean.
func ErrorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return ErrAuthentication
	case status == http.StatusPaymentRequired:
		return ErrBilling
	case status == http.StatusForbidden:
		return ErrPermission
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case status == http.StatusTooManyRequests:
		return ErrRateLimit
	case status == http.StatusServiceUnavailable || status == 529:
		return ErrOverloaded
	case status == http.StatusGatewayTimeout:
		return ErrTimeout
	case status >= 500:
		return ErrAPI
	default:
		return ErrInvalidRequest
	}
}

// ErrorBody is Anthropic's error answer, {"type":"error","error":{"type",
// "message"},"request_id"}.
func ErrorBody(errType, message, requestID string) []byte {
	type inner struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	b, _ := json.Marshal(struct {
		Type      string `json:"type"`
		Error     inner  `json:"error"`
		RequestID string `json:"request_id,omitempty"`
	}{"error", inner{errType, message}, requestID})
	return b
}

// TranslateError turns the gateway's OpenAI-shaped error answer (status and
// body {"error":{"message","type","param","code"}}) into Anthropic's body.
// A body that is not OpenAI-shaped (a backend's own text) keeps a generic
// message for its status.
func TranslateError(status int, openai []byte, requestID string) []byte {
	return ErrorBody(ErrorType(status), openAIMessage(status, openai), requestID)
}

func openAIMessage(status int, body []byte) string {
	var e struct {
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		if e.Error != nil && e.Error.Message != "" {
			return e.Error.Message
		}
		if e.Message != "" {
			return e.Message
		}
	}
	if t := http.StatusText(status); t != "" {
		return t
	}
	return "error"
}

// RequestErrorBody is the 400 answer for a refused request.
func RequestErrorBody(e *RequestError, requestID string) []byte {
	return ErrorBody(ErrInvalidRequest, e.Message, requestID)
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
