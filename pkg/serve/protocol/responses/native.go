package responses

import (
	"bytes"
	"encoding/json"

	"github.com/llmctl/llmctl/pkg/serve/protocol"
)

// The Responses API passed through to a backend that serves it (the gateway
// reads only the usage and the stream's end; docs/protocols.md).

// nativeUsage is the Responses usage object.
type nativeUsage struct {
	InputTokens        *int64 `json:"input_tokens"`
	OutputTokens       *int64 `json:"output_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
}

// Into records n in u.
func (n *nativeUsage) Into(u *protocol.Usage) bool {
	return n != nil && u.Set(n.InputTokens, n.OutputTokens, n.InputTokensDetails.CachedTokens)
}

// Usage reads a response object's usage.
func (Adapter) Usage(body []byte) (protocol.Usage, bool) {
	return protocol.AnswerUsage[*nativeUsage](body)
}

// Event reads one stream event: the *.delta events carry output, and the
// terminal events (response.completed, .incomplete, .failed) carry the
// whole response with its usage and end the stream.
func (Adapter) Event(data []byte, u *protocol.Usage) (output, last bool) {
	typ := eventType(data)
	switch typ {
	case "response.completed", "response.incomplete", "response.failed":
		var v struct {
			Response struct {
				Usage *nativeUsage `json:"usage"`
			} `json:"response"`
		}
		if json.Unmarshal(data, &v) == nil {
			v.Response.Usage.Into(u)
		}
		return false, true
	}
	// Text, tool-call arguments, reasoning and refusals all stream as deltas;
	// an empty delta is not output.
	return len(typ) > len(".delta") && typ[len(typ)-len(".delta"):] == ".delta" &&
		!bytes.Contains(data, []byte(`"delta":""`)), false
}

// eventType is an event's "type", "" when it has none.
func eventType(data []byte) string {
	var v struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	return v.Type
}

// StreamError is the Responses error event, numbered after the delivered ones.
func (Adapter) StreamError(message string, delivered int64) []byte {
	code := "stream_interrupted"
	b, err := json.Marshal(errorEvent{Type: "error", Code: &code, Message: message, SequenceNumber: delivered})
	if err != nil {
		return nil
	}
	return protocol.SSE("error", b)
}

var _ protocol.Native = Adapter{}
