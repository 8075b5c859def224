package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Message is the non-stream answer of POST /v1/messages.
type Message struct {
	ID           string         `json:"id"`
	Type         string         `json:"type"`
	Role         string         `json:"role"`
	Model        string         `json:"model"`
	Content      []ContentBlock `json:"content"`
	StopReason   *string        `json:"stop_reason"`
	StopSequence *string        `json:"stop_sequence"`
	Usage        Usage          `json:"usage"`
}

// ContentBlock is a text or tool_use block of an answer.
type ContentBlock struct {
	Type  string          `json:"type"`
	Text  *string         `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

// Usage is Anthropic's usage: input_tokens excludes the cached part, which
// is cache_read_input_tokens (chat's prompt_tokens includes it).
type Usage struct {
	InputTokens              int64 `json:"input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
}

// chatUsage is the usage object of a chat answer or final stream chunk.
type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func (u *chatUsage) anthropic() Usage {
	if u == nil {
		return Usage{}
	}
	var cached int64
	if u.PromptTokensDetails != nil {
		cached = min(max(u.PromptTokensDetails.CachedTokens, 0), u.PromptTokens)
	}
	return Usage{InputTokens: u.PromptTokens - cached, CacheReadInputTokens: cached, OutputTokens: u.CompletionTokens}
}

// toolCallOut is a tool call of a chat answer, or a piece of one in a
// stream chunk (where index says which call it continues).
type toolCallOut struct {
	Index    int    `json:"index"`
	ID       string `json:"id"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatCompletion struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content   *string       `json:"content"`
			ToolCalls []toolCallOut `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
		// vLLM names the stop string that ended the text here.
		StopReason json.RawMessage `json:"stop_reason"`
	} `json:"choices"`
	Usage *chatUsage `json:"usage"`
}

// TranslateResponse turns a chat completion (JSON) into a Message. id is
// the message id ("msg_" + the gateway's request id); model is the name the
// client asked for.
func TranslateResponse(chat []byte, req *Request, id string) ([]byte, error) {
	var cc chatCompletion
	if err := json.Unmarshal(chat, &cc); err != nil {
		return nil, fmt.Errorf("the backend's chat answer is not valid JSON: %w", err)
	}
	if len(cc.Choices) == 0 {
		return nil, fmt.Errorf("the backend's chat answer has no choices")
	}
	c := cc.Choices[0]
	m := Message{ID: id, Type: "message", Role: "assistant", Model: req.Model, Content: []ContentBlock{}, Usage: cc.Usage.anthropic()}
	if c.Message.Content != nil && *c.Message.Content != "" {
		m.Content = append(m.Content, textBlock(*c.Message.Content))
	}
	for _, tc := range c.Message.ToolCalls {
		m.Content = append(m.Content, ContentBlock{Type: "tool_use", ID: toolUseID(tc.ID), Name: tc.Function.Name, Input: toolInput(tc.Function.Arguments)})
	}
	reason, seq := stopReason(c.FinishReason, c.StopReason, req.StopSequences)
	if len(c.Message.ToolCalls) > 0 && reason == "end_turn" {
		reason = "tool_use" // some backends say "stop" after tool calls
	}
	m.StopReason, m.StopSequence = &reason, seq
	return json.Marshal(&m)
}

func textBlock(s string) ContentBlock { return ContentBlock{Type: "text", Text: &s} }

// toolUseID keeps the backend's call id (so tool_result finds it again) and
// makes one when the backend gave none.
func toolUseID(id string) string {
	if id == "" {
		return "toolu_" + randomID()
	}
	return id
}

// toolInput is the tool call's arguments as the object Anthropic's input
// is. Arguments that are not a JSON object (a model's malformed output) are
// kept, as {"arguments": "<the text>"}, rather than lost or failing a
// generation that was already paid for.
func toolInput(args string) json.RawMessage {
	if len(bytes.TrimSpace([]byte(args))) == 0 {
		return json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(args), &obj) == nil && obj != nil {
		var b bytes.Buffer
		if json.Compact(&b, []byte(args)) == nil {
			return b.Bytes()
		}
	}
	b, _ := json.Marshal(map[string]string{"arguments": args})
	return b
}

// stopReason maps chat's finish_reason. A "stop" is a stop_sequence when the
// backend names a matched stop string (vLLM's stop_reason); backends that do
// not say which stop ended the text (the chat API has no field for it)
// report end_turn.
func stopReason(finish string, backendStop json.RawMessage, stops []string) (string, *string) {
	switch finish {
	case "length":
		return "max_tokens", nil
	case "tool_calls", "function_call":
		return "tool_use", nil
	case "content_filter":
		return "refusal", nil
	}
	var s string
	if len(backendStop) > 0 && json.Unmarshal(backendStop, &s) == nil && slices.Contains(stops, s) {
		return "stop_sequence", &s
	}
	return "end_turn", nil
}

// CountTokensBody is the answer of POST /v1/messages/count_tokens.
func CountTokensBody(inputTokens int64) []byte {
	b, _ := json.Marshal(map[string]int64{"input_tokens": inputTokens})
	return b
}

// MessageID is the id of the message answering the gateway request id.
func MessageID(requestID string) string {
	if requestID == "" {
		return "msg_" + randomID()
	}
	return "msg_" + requestID
}
