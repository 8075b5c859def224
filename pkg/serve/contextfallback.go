package serve

// Context-window fallback (docs/routing.md): a prompt that does not fit a
// model's context goes to a configured longer-context model instead of
// failing. The one that refuses counts the tokens: the embedded engine with
// the model's own tokenizer (code context_length_exceeded), a remote
// backend by its own 400 (vLLM, llama.cpp server, OpenAI). So the gateway
// never guesses a prompt's length against a context; the refusal costs one
// round trip to the backend that cannot hold it, and nothing is charged
// for it (the hold is released at zero).

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/llmctl/llmctl/pkg/billing"
)

// onward is what may follow when model cannot answer: an availability
// fallback (fallback.go), or a longer-context model.
type onward struct {
	fallback bool // a model of its fallbacks list remains
	longer   bool // a model of its contextFallbacks list remains
}

// nextModel is forward's verdict on what the caller tries next.
type nextModel int

const (
	nextNone     nextModel = iota // answered, or the error went out
	nextFallback                  // every backend failed before the first byte
	nextLonger                    // the prompt does not fit the model's context
)

// contextChain lists the longer-context models of model that exist now
// and p may use, in order (aliases resolved; their own lists are not
// followed, so no list can loop).
func (g *Gateway) contextChain(p billing.Principal, model string) []string {
	var chain []string
	for _, name := range g.opts.ContextFallbacks[model] {
		m, known := g.router.resolve(name)
		if !known || m == model || (!p.Allows(name) && !p.Allows(m)) {
			continue
		}
		chain = append(chain, m)
	}
	return chain
}

// contextExceeded reports whether err is a backend's refusal of a prompt
// longer than its model's context (a 400 or 413 it passed through).
func contextExceeded(err error) bool {
	be, ok := errors.AsType[*BackendError](err)
	if !ok || be.Reason != "" || be.Status != http.StatusBadRequest && be.Status != http.StatusRequestEntityTooLarge {
		return false
	}
	return contextRefusal(be.Body)
}

// contextRefusal reads an error body for the known ways servers say that
// the prompt does not fit: OpenAI's code context_length_exceeded (the
// engine's too), llama.cpp server's type exceed_context_size_error, and
// vLLM's "maximum context length" message, in the {"error":{…}} shape or
// vLLM's older flat one ({"object":"error","message":…}).
func contextRefusal(body []byte) bool {
	type detail struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"` // a string, or vLLM's number
	}
	var v struct {
		detail
		Error *detail `json:"error"`
	}
	if json.Unmarshal(body, &v) != nil {
		return false
	}
	d := v.detail
	if v.Error != nil {
		d = *v.Error
	}
	var code string
	_ = json.Unmarshal(d.Code, &code)
	msg := strings.ToLower(d.Message)
	return code == "context_length_exceeded" || d.Type == "exceed_context_size_error" ||
		strings.Contains(msg, "maximum context length") || strings.Contains(msg, "exceeds the available context size")
}
