// Package protocol is the seam between the gateway and the client
// protocols it serves by translation (OpenAI Responses, Anthropic
// Messages). A protocol route decodes its body into ONE chat completions
// request, the gateway runs that through its ordinary chat path (auth,
// model scopes, limits, reserve → route → forward → settle, metrics and the
// access log, streams included), and the protocol translates the chat
// answer back. So billing, limits and usage need no protocol of their own,
// and every backend (remote or the embedded engine) serves every protocol.
//
// This package holds only the contract; each protocol lives in its own
// package below it, and pkg/serve lists them (edge.go).
package protocol

import (
	"net/http"
	"strings"

	"github.com/llmctl/llmctl/pkg/serve/apierror"
)

// Adapter is one client protocol served by translation.
type Adapter interface {
	// Route is the route label of metrics and the access log ("responses").
	Route() string
	// Paths are the URL paths it serves; each takes POST only.
	Paths() []string
	// APIKey returns the caller's key from the request headers, "" when
	// none was sent. Read before any body byte, like the chat routes.
	APIKey(h http.Header) string
	// New begins one exchange on path: it decodes the request, then
	// translates the answer to it.
	New(path string) Exchange
}

// Request is a protocol request decoded into the gateway's terms.
type Request struct {
	// Chat is an OpenAI chat completions body. The gateway forces
	// stream_options.include_usage on a stream, so the usage chunk always
	// reaches Exchange.Chunk before [DONE].
	Chat []byte
	// CountTokens asks for the prompt's token count instead of an answer:
	// the gateway authenticates and checks the model like any request,
	// sends nothing to a backend and answers 200 with a TokenCount, which
	// Exchange.JSON translates.
	CountTokens bool
}

// TokenCount is the chat-shaped answer to a CountTokens request.
type TokenCount struct {
	Object       string `json:"object"` // "token_count"
	Model        string `json:"model"`
	PromptTokens int64  `json:"prompt_tokens"`
}

// Exchange is one request's decoder and answer translator. The gateway
// calls Decode once, then either JSON once, or Chunk for each stream event
// followed by exactly one of Done or StreamError. An Exchange is used by one
// goroutine only. Each translation returns the bytes to send (nil: nothing).
type Exchange interface {
	// Decode turns the protocol body into a chat completions request, or
	// refuses it: a 400 naming the offending field, given in OpenAI's
	// shape like every gateway error, and rendered by JSON like them.
	Decode(body []byte) (*Request, *apierror.Error)
	// JSON translates a whole answer: a chat.completion object (or a
	// TokenCount) when status is 200, an OpenAI error object otherwise
	// (any status, any point before a stream started). It returns the
	// status and Content-Type to send with the body.
	JSON(status int, body []byte) (int, string, []byte)
	// Chunk translates one stream event's data: a chat.completion.chunk,
	// or the usage chunk (no choices, usage set). Returns SSE bytes.
	Chunk(data []byte) []byte
	// Done ends a stream that completed ([DONE]).
	Done() []byte
	// StreamError ends a stream that broke off after it started: body is
	// the OpenAI error object the gateway would have sent, or nil when it
	// ended without saying why. The protocol's error event, then nothing.
	StreamError(body []byte) []byte
}

// BearerKey is the key of an "Authorization: Bearer KEY" header.
func BearerKey(h http.Header) string {
	v := h.Get("Authorization")
	key, ok := strings.CutPrefix(v, "Bearer ")
	if !ok {
		key, ok = strings.CutPrefix(v, "bearer ")
	}
	if !ok {
		return ""
	}
	return strings.TrimSpace(key)
}

// SSE frames one server-sent event with an event name (none when "").
func SSE(event string, data []byte) []byte {
	out := make([]byte, 0, len(event)+len(data)+16)
	if event != "" {
		out = append(append(append(out, "event: "...), event...), '\n')
	}
	out = append(append(out, "data: "...), data...)
	return append(out, "\n\n"...)
}
