package anthropic

import (
	"encoding/json"
	"math"

	"github.com/llmctl/llmctl/pkg/serve/protocol"
)

// The Messages API passed through to a backend that serves it (the gateway
// reads only the usage and the stream's end; docs/protocols.md).

// nativeUsage is a Messages usage object. Anthropic's input_tokens leaves
// out the cache reads and writes; the gateway's prompt count includes them.
type nativeUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
	CacheCreationInputTokens int64  `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64  `json:"cache_read_input_tokens"`
}

// Into records n in u.
func (n *nativeUsage) Into(u *protocol.Usage) bool {
	if n == nil {
		return false
	}
	prompt := n.InputTokens
	if prompt != nil {
		all := max(*prompt, 0) + max(n.CacheCreationInputTokens, 0) + max(n.CacheReadInputTokens, 0)
		if all < 0 { // wrapped: absurd counts saturate rather than turn small
			all = math.MaxInt64
		}
		prompt = &all
	}
	return u.Set(prompt, n.OutputTokens, n.CacheReadInputTokens)
}

// Usage reads a message's usage.
func (Adapter) Usage(body []byte) (protocol.Usage, bool) {
	return protocol.AnswerUsage[*nativeUsage](body)
}

// Event reads one stream event: message_start has the input usage,
// message_delta the cumulative output usage, content_block_delta is output,
// message_stop ends the stream.
func (Adapter) Event(data []byte, u *protocol.Usage) (output, last bool) {
	var v struct {
		Type    string `json:"type"`
		Message struct {
			Usage *nativeUsage `json:"usage"`
		} `json:"message"`
		Usage *nativeUsage `json:"usage"`
	}
	if json.Unmarshal(data, &v) != nil {
		return false, false
	}
	switch v.Type {
	case "message_start":
		v.Message.Usage.Into(u)
	case "message_delta":
		v.Usage.Into(u)
	case "content_block_delta":
		return true, false
	case "message_stop":
		return false, true
	}
	return false, false
}

// StreamError is the Messages error event.
func (Adapter) StreamError(message string, _ int64) []byte {
	return protocol.SSE("error", ErrorBody(ErrAPI, message, ""))
}

var _ protocol.Native = Adapter{}
