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
	"bytes"
	"encoding/json"
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

// Native is implemented by an Adapter whose protocol a backend may serve
// itself (a backend's `protocols:` list names it by Route). The gateway then
// forwards the client's own body, model name rewritten, to the same path on
// that backend and passes the answer back untranslated; what it needs from
// the protocol is only the usage to settle and where a stream ends.
type Native interface {
	// Usage reads the usage of a whole (non-stream) answer; ok is false
	// when the answer reports none.
	Usage(body []byte) (u Usage, ok bool)
	// Event inspects one stream event's data: it adds the usage the event
	// reports to u (set tells it did), and tells whether the event carries
	// generated output (counted when the stream is cut) and whether it is
	// the stream's last event (held back until the charge is settled).
	Event(data []byte, u *Usage) (output, last bool)
	// StreamError is the protocol's error event ending a stream that broke
	// off after it started, after delivered events (Responses numbers its
	// events from 0, so the error's sequence_number is delivered).
	StreamError(message string, delivered int64) []byte
}

// Usage is a protocol answer's token usage in the gateway's terms: Prompt
// includes Cached, as OpenAI counts it.
type Usage struct {
	Prompt, Completion, Cached int64
	PromptSet, CompletionSet   bool // reported, as opposed to zero
}

// Set records the counts an answer reports: prompt (of which cached) and
// completion, each only when reported (not nil; negatives count as 0). It
// reports whether either was.
func (u *Usage) Set(prompt, completion *int64, cached int64) bool {
	if prompt != nil {
		u.Prompt, u.Cached, u.PromptSet = max(*prompt, 0), max(cached, 0), true
	}
	if completion != nil {
		u.Completion, u.CompletionSet = max(*completion, 0), true
	}
	return prompt != nil || completion != nil
}

// Reported is a protocol's own usage object, read into the gateway's terms.
type Reported interface {
	// Into records the reported counts in u; false when it reports none
	// (a nil Reported included).
	Into(u *Usage) bool
}

// AnswerUsage reads a whole answer's "usage" object as R.
func AnswerUsage[R Reported](body []byte) (Usage, bool) {
	var v struct {
		Usage R `json:"usage"`
	}
	var u Usage
	if json.Unmarshal(body, &v) != nil {
		return u, false
	}
	return u, v.Usage.Into(&u)
}

// EventData is the data of one raw SSE event (its data: lines joined).
func EventData(ev []byte) []byte {
	var data []byte
	n := 0
	for line := range bytes.SplitSeq(ev, []byte("\n")) {
		if d, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), []byte("data:")); ok {
			if n > 0 {
				data = append(data, '\n')
			}
			data = append(data, bytes.TrimPrefix(d, []byte(" "))...)
			n++
		}
	}
	return data
}
