package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/llmctl/llmctl/internal/decodeerr"
)

// clientRequest is a decoded, validated client body. Unknown fields are kept
// verbatim in fields so the upstream sees exactly what the client sent,
// except for the model name and stream_options.
type clientRequest struct {
	endpoint       Endpoint
	model          string
	stream         bool
	includeUsage   bool   // the client itself asked for the usage chunk
	maxTokens      int64  // 0 when the client set none
	maxTokensField string // which field set maxTokens, for errors
	promptEstimate int64  // rough prompt size in tokens, before the backend counts
	choices        int64  // completions it may generate: max(n, best_of), at least 1
	endUser        string // the OpenAI `user` field, recorded on the charge
	fields         map[string]json.RawMessage
	native         *nativeCall     // a protocol request a backend may serve itself
	only           string          // only backends declaring this protocol serve it ("rerank")
	batchID        string          // the batch this is a line of (batchapi.go): the batch price
	waitCtx        context.Context // a batch line's bound on its wait for a slot (batchapi.go)
}

// decodeRequest parses and validates an OpenAI request body for ep. Every
// failure is a 400 naming the offending field.
func decodeRequest(ep Endpoint, body []byte) (*clientRequest, *apiError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("", "request body is empty; send a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, badRequest("", "request body is not a valid JSON object: %s", decodeerr.JSON(err))
	}
	if fields == nil {
		return nil, badRequest("", "request body must be a JSON object, not null")
	}
	cr := &clientRequest{endpoint: ep, fields: fields, choices: 1}

	if err := decodeField(fields, "model", &cr.model); err != nil {
		return nil, err
	}
	if cr.model == "" {
		return nil, badRequest("model", "you must provide a model parameter")
	}
	if ep == EndpointRerank || ep == EndpointScore {
		return decodeScoring(cr)
	}
	if err := decodeField(fields, "stream", &cr.stream); err != nil {
		return nil, err
	}
	if raw, ok := fields["stream_options"]; ok && !isNull(raw) {
		var so struct {
			IncludeUsage *bool `json:"include_usage"`
		}
		if err := json.Unmarshal(raw, &so); err != nil {
			return nil, badRequest("stream_options", "stream_options must be an object: %s", decodeerr.JSON(err))
		}
		if !cr.stream {
			return nil, badRequest("stream_options", "stream_options is only allowed when stream is true")
		}
		cr.includeUsage = so.IncludeUsage != nil && *so.IncludeUsage
	}
	for _, name := range []string{"max_tokens", "max_completion_tokens"} {
		var n *int64
		if err := decodeField(fields, name, &n); err != nil {
			return nil, err
		}
		if n != nil {
			if *n < 0 {
				return nil, badRequest(name, "%s must be a non-negative integer, got %d", name, *n)
			}
			if *n > cr.maxTokens {
				cr.maxTokens, cr.maxTokensField = *n, name
			}
		}
	}

	var aerr *apiError
	if cr.endUser, aerr = decodeEndUser(fields); aerr != nil {
		return nil, aerr
	}
	if ep != EndpointEmbeddings {
		if cr.choices, aerr = decodeChoices(fields); aerr != nil {
			return nil, aerr
		}
	}

	var input json.RawMessage
	switch ep {
	case EndpointChat:
		var msgs []struct {
			Role *string `json:"role"`
		}
		if err := decodeField(fields, "messages", &msgs); err != nil {
			return nil, err
		}
		if len(msgs) == 0 {
			return nil, badRequest("messages", "messages must be a non-empty array")
		}
		for i, m := range msgs {
			if m.Role == nil || *m.Role == "" {
				return nil, badRequest(fmt.Sprintf("messages[%d].role", i), "messages[%d] has no role", i)
			}
		}
		input = fields["messages"]
	case EndpointCompletions:
		input = fields["prompt"]
		if len(input) == 0 || isNull(input) {
			return nil, badRequest("prompt", "you must provide a prompt parameter")
		}
	case EndpointEmbeddings:
		input = fields["input"]
		if len(input) == 0 || isNull(input) {
			return nil, badRequest("input", "you must provide an input parameter")
		}
		if cr.stream {
			return nil, badRequest("stream", "embeddings cannot be streamed")
		}
	default:
		return nil, badRequest("", "unsupported endpoint %q", ep)
	}
	switch input[0] {
	case '"', '[', '{':
	default:
		return nil, badRequest("", "the input must be a string or an array")
	}
	// Enough for admission and reservation, which settle to the backend's
	// exact count afterwards.
	cr.promptEstimate = estimatePrompt(ep, input)
	return cr, nil
}

// decodeField unmarshals fields[name] into dst when present and not null.
func decodeField(fields map[string]json.RawMessage, name string, dst any) *apiError {
	raw, ok := fields[name]
	if !ok || isNull(raw) || decodeFast(raw, dst) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return badRequest(name, "invalid type for %s: %s", name, decodeerr.JSON(err))
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// upstreamBody is the body sent to a backend: the client's fields with the
// backend's model name and, for streams, include_usage forced on so usage is
// always known (the extra chunk is stripped again if the client did not ask).
func (cr *clientRequest) upstreamBody(model string) ([]byte, error) {
	keys := make([]string, 0, len(cr.fields))
	size := len(model) + 64
	for k, v := range cr.fields {
		if k == "model" || (cr.stream && k == "stream_options") {
			continue
		}
		keys = append(keys, k)
		size += len(k) + len(v) + 4
	}
	slices.Sort(keys) // deterministic bodies, as json.Marshal of a map would give
	// Assembled by hand: the values are raw JSON already validated by the
	// decoder, so re-marshalling (and re-compacting) them is wasted work.
	out := make([]byte, 0, size)
	out = append(out, `{"model":`...)
	out = appendJSONString(out, model)
	for _, k := range keys {
		out = append(out, ',')
		out = appendJSONString(out, k)
		out = append(out, ':')
		out = append(out, cr.fields[k]...)
	}
	if cr.stream {
		out = append(out, `,"stream_options":{"include_usage":true}`...)
	}
	return append(out, '}'), nil
}
