// Package anthropic translates Anthropic's Messages API (POST /v1/messages,
// POST /v1/messages/count_tokens) to and from OpenAI chat completions, the
// one internal request of the gateway (design.md, "protocol in"): a Messages
// body becomes a chat body, and the chat answer (JSON, SSE chunks or an
// OpenAI-shaped error) becomes the Messages answer, stream events and error
// shape Anthropic documents. It knows nothing of HTTP routing, billing or
// backends; pkg/serve plugs it into the chat path.
package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/llmctl/llmctl/internal/decodeerr"
)

// RequestError is a request the translation refuses: a 400
// invalid_request_error naming the field (Param, a path such as
// "messages[1].content[0].type").
type RequestError struct {
	Param   string
	Message string
}

func (e *RequestError) Error() string { return e.Message }

func reqErr(param, format string, args ...any) *RequestError {
	return &RequestError{Param: param, Message: fmt.Sprintf(format, args...)}
}

// Request is a decoded Messages request, translated.
type Request struct {
	Model         string
	MaxTokens     int64
	Stream        bool
	StopSequences []string
	// Chat is the chat completions body that carries the request to any
	// backend (stream_options.include_usage set when streaming, so the final
	// usage arrives in the stream).
	Chat []byte
	// InputEstimate is a rough prompt size for message_start, which comes
	// before the backend has counted: a token per 4 bytes of the chat body
	// outside its images (a base64 image is not a token per 4 bytes).
	InputEstimate int64
}

// The fields of a Messages request that are honoured. Everything else is
// refused by name, so no field is silently ignored.
var (
	messageFields     = []string{"model", "max_tokens", "messages", "system", "metadata", "stop_sequences", "stream", "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "cache_control"}
	countTokensFields = []string{"model", "messages", "system", "tools", "tool_choice", "thinking", "cache_control"}
)

// Field-level notes for features that exist in Anthropic's API but that a
// chat completions backend cannot honour: the 400 says why.
var unsupported = map[string]string{
	"container":          "code execution containers are not available through this gateway",
	"mcp_servers":        "MCP servers are not available through this gateway",
	"service_tier":       "this gateway has one service tier",
	"inference_geo":      "this gateway does not choose an inference region",
	"speed":              "this gateway has one speed",
	"output_config":      "structured output and effort settings are not translated to chat completions",
	"diagnostics":        "diagnostics are not available through this gateway",
	"context_management": "context management is not available through this gateway",
}

// chat completions body, in a fixed field order for stable golden files.
type chatRequest struct {
	Model             string         `json:"model"`
	Messages          []chatMessage  `json:"messages"`
	MaxTokens         int64          `json:"max_tokens,omitempty"`
	Temperature       *float64       `json:"temperature,omitempty"`
	TopP              *float64       `json:"top_p,omitempty"`
	TopK              *int64         `json:"top_k,omitempty"`
	Stop              []string       `json:"stop,omitempty"`
	Tools             []chatTool     `json:"tools,omitempty"`
	ToolChoice        any            `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool          `json:"parallel_tool_calls,omitempty"`
	User              string         `json:"user,omitempty"`
	Stream            bool           `json:"stream,omitempty"`
	StreamOptions     *streamOptions `json:"stream_options,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role       string         `json:"role"`
	Content    any            `json:"content"` // string, []chatPart, or nil beside tool_calls
	ToolCalls  []chatToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

type chatPart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *imageURL `json:"image_url,omitempty"`
}

type imageURL struct {
	URL string `json:"url"`
}

type chatToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type chatTool struct {
	Type     string      `json:"type"`
	Function chatToolDef `json:"function"`
}

type chatToolDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters"`
}

// object is one JSON object whose keys are checked against what is honoured.
type object struct {
	path   string
	fields map[string]json.RawMessage
}

func decodeObject(path string, raw json.RawMessage) (object, *RequestError) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		where := path
		if where == "" {
			return object{}, reqErr("", "request body must be a JSON object")
		}
		return object{}, reqErr(path, "%s must be an object", where)
	}
	return object{path: path, fields: fields}, nil
}

func (o object) name(field string) string {
	if o.path == "" {
		return field
	}
	return o.path + "." + field
}

// only refuses any key outside allowed, naming the first in sorted order.
func (o object) only(allowed ...string) *RequestError {
	var extra []string
	for k := range o.fields {
		if !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	sort.Strings(extra)
	k := extra[0]
	if why, ok := unsupported[k]; ok && o.path == "" {
		return reqErr(k, "%s is not supported: %s", k, why)
	}
	return reqErr(o.name(k), "unknown field %s (this gateway honours: %s)", o.name(k), strings.Join(allowed, ", "))
}

// get decodes field into dst when present and not null; it reports presence.
func (o object) get(field string, dst any) (bool, *RequestError) {
	raw, ok := o.fields[field]
	if !ok || isNull(raw) {
		return false, nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return false, reqErr(o.name(field), "%s: %s", o.name(field), decodeerr.JSON(err))
	}
	return true, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// DecodeMessages parses and validates a POST /v1/messages body and
// translates it to a chat completions body.
func DecodeMessages(body []byte) (*Request, *RequestError) {
	return decode(body, false)
}

// DecodeCountTokens parses a POST /v1/messages/count_tokens body (a Messages
// body without max_tokens, stream and the sampling fields) into the chat body
// whose prompt would be counted.
func DecodeCountTokens(body []byte) (*Request, *RequestError) {
	return decode(body, true)
}

func decode(body []byte, count bool) (*Request, *RequestError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, reqErr("", "request body is empty; send a JSON object")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, reqErr("", "request body is not a valid JSON object: %s", decodeerr.JSON(err))
	}
	if top == nil {
		return nil, reqErr("", "request body must be a JSON object, not null")
	}
	o := object{fields: top}
	allowed := messageFields
	if count {
		allowed = countTokensFields
	}
	if err := o.only(allowed...); err != nil {
		return nil, err
	}
	req := &Request{}
	var cr chatRequest
	if _, err := o.get("model", &req.Model); err != nil {
		return nil, err
	}
	if req.Model == "" {
		return nil, reqErr("model", "model: field required")
	}
	cr.Model = req.Model
	if !count {
		ok, err := o.get("max_tokens", &req.MaxTokens)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, reqErr("max_tokens", "max_tokens: field required")
		}
		if req.MaxTokens < 1 {
			return nil, reqErr("max_tokens", "max_tokens: must be at least 1, got %d", req.MaxTokens)
		}
		cr.MaxTokens = req.MaxTokens
		if _, err := o.get("stream", &req.Stream); err != nil {
			return nil, err
		}
		if req.Stream {
			cr.Stream, cr.StreamOptions = true, &streamOptions{IncludeUsage: true}
		}
		if err := decodeSampling(o, &cr); err != nil {
			return nil, err
		}
		if _, err := o.get("stop_sequences", &req.StopSequences); err != nil {
			return nil, err
		}
		for i, s := range req.StopSequences {
			if s == "" {
				return nil, reqErr(fmt.Sprintf("stop_sequences[%d]", i), "stop_sequences[%d] must not be empty", i)
			}
		}
		cr.Stop = req.StopSequences
		if raw, ok := top["metadata"]; ok && !isNull(raw) {
			md, err := decodeObject("metadata", raw)
			if err != nil {
				return nil, err
			}
			if err := md.only("user_id"); err != nil {
				return nil, err
			}
			if _, err := md.get("user_id", &cr.User); err != nil {
				return nil, err
			}
		}
	}
	if raw, ok := top["thinking"]; ok && !isNull(raw) {
		// Extended thinking needs the backend to stream reasoning as
		// signed thinking blocks; a chat backend has no such thing. A
		// disabled one asks for nothing and is accepted.
		var th struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(raw, &th) != nil || th.Type != "disabled" {
			return nil, reqErr("thinking", "thinking is not supported: extended thinking cannot be translated to chat completions; omit it or send {\"type\":\"disabled\"}")
		}
	}
	if raw, ok := top["cache_control"]; ok && !isNull(raw) {
		if err := checkCacheControl("cache_control", raw); err != nil {
			return nil, err
		}
	}
	if raw, ok := top["system"]; ok && !isNull(raw) {
		text, err := decodeSystem(raw)
		if err != nil {
			return nil, err
		}
		cr.Messages = append(cr.Messages, chatMessage{Role: "system", Content: text})
	}
	raw, ok := top["messages"]
	if !ok || isNull(raw) {
		return nil, reqErr("messages", "messages: field required")
	}
	msgs, err := decodeMessages(raw, !count)
	if err != nil {
		return nil, err
	}
	cr.Messages = append(cr.Messages, msgs...)
	if raw, ok := top["tools"]; ok && !isNull(raw) {
		if cr.Tools, err = decodeTools(raw); err != nil {
			return nil, err
		}
	}
	if raw, ok := top["tool_choice"]; ok && !isNull(raw) {
		if cr.ToolChoice, cr.ParallelToolCalls, err = decodeToolChoice(raw, cr.Tools); err != nil {
			return nil, err
		}
	}
	if count && len(cr.Tools) > 0 {
		// A count_tokens body is never sent to a backend; the gateway counts
		// its messages. Tool definitions are part of the prompt a backend
		// would see, so they are counted as one more message.
		defs, _ := json.Marshal(cr.Tools)
		cr.Messages = append(cr.Messages, chatMessage{Role: "system", Content: string(defs)})
	}
	b, merr := json.Marshal(&cr)
	if merr != nil { // only unencodable floats reach here, refused above
		return nil, reqErr("", "request cannot be translated: %v", merr)
	}
	req.Chat = b
	imageBytes := 0
	for _, m := range cr.Messages {
		if parts, ok := m.Content.([]chatPart); ok {
			for _, p := range parts {
				if p.ImageURL != nil {
					imageBytes += len(p.ImageURL.URL)
				}
			}
		}
	}
	req.InputEstimate = int64(max(len(b)-imageBytes, 0))/4 + 1
	return req, nil
}

func decodeSampling(o object, cr *chatRequest) *RequestError {
	var t, p float64
	if ok, err := o.get("temperature", &t); err != nil {
		return err
	} else if ok {
		if t < 0 || t > 1 {
			return reqErr("temperature", "temperature: must be between 0 and 1, got %g", t)
		}
		cr.Temperature = &t
	}
	if ok, err := o.get("top_p", &p); err != nil {
		return err
	} else if ok {
		if p < 0 || p > 1 {
			return reqErr("top_p", "top_p: must be between 0 and 1, got %g", p)
		}
		cr.TopP = &p
	}
	var k int64
	if ok, err := o.get("top_k", &k); err != nil {
		return err
	} else if ok {
		if k < 0 {
			return reqErr("top_k", "top_k: must be a non-negative integer, got %d", k)
		}
		// Forwarded as top_k, which vLLM, llama.cpp's server and
		// the embedded engine read; a backend without it ignores it.
		cr.TopK = &k
	}
	return nil
}

// checkCacheControl accepts Anthropic's prompt-caching marker and does
// nothing with it: caching changes cost and latency, never the answer, and
// usage reports the cached tokens the backend itself reports.
func checkCacheControl(path string, raw json.RawMessage) *RequestError {
	cc, err := decodeObject(path, raw)
	if err != nil {
		return err
	}
	if err := cc.only("type", "ttl"); err != nil {
		return err
	}
	var typ string
	if _, err := cc.get("type", &typ); err != nil {
		return err
	}
	if typ != "ephemeral" {
		return reqErr(path+".type", "%s.type must be \"ephemeral\", got %q", path, typ)
	}
	return nil
}

// cacheControl checks the block's cache_control, when present.
func (o object) cacheControl() *RequestError {
	if raw, ok := o.fields["cache_control"]; ok && !isNull(raw) {
		return checkCacheControl(o.name("cache_control"), raw)
	}
	return nil
}

// decodeSystem reads system as a string or an array of text blocks, joined
// by newlines into one system message (some backends take only a string).
func decodeSystem(raw json.RawMessage) (string, *RequestError) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var blocks []json.RawMessage
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", reqErr("system", "system must be a string or an array of text blocks")
	}
	texts := make([]string, 0, len(blocks))
	for i, b := range blocks {
		path := fmt.Sprintf("system[%d]", i)
		t, err := decodeTextBlock(path, b)
		if err != nil {
			return "", err
		}
		texts = append(texts, t)
	}
	return strings.Join(texts, "\n"), nil
}

// decodeTextBlock reads a {"type":"text","text"} block.
func decodeTextBlock(path string, raw json.RawMessage) (string, *RequestError) {
	o, err := decodeObject(path, raw)
	if err != nil {
		return "", err
	}
	var typ string
	if _, err := o.get("type", &typ); err != nil {
		return "", err
	}
	if typ != "text" {
		return "", reqErr(o.name("type"), "%s must be \"text\", got %q", o.name("type"), typ)
	}
	return textOf(o)
}

func textOf(o object) (string, *RequestError) {
	if err := o.only("type", "text", "cache_control", "citations"); err != nil {
		return "", err
	}
	if raw, ok := o.fields["citations"]; ok && !isNull(raw) && string(bytes.TrimSpace(raw)) != "[]" {
		return "", reqErr(o.name("citations"), "%s is not supported: citations cannot be translated to chat completions", o.name("citations"))
	}
	if err := o.cacheControl(); err != nil {
		return "", err
	}
	var text string
	ok, err := o.get("text", &text)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", reqErr(o.name("text"), "%s: field required", o.name("text"))
	}
	return text, nil
}

// decodeMessages translates the conversation (generate: for an answer, not
// a count). A user turn's tool_result blocks become chat "tool" messages,
// placed before the rest of that turn (chat wants them right after the
// assistant's tool calls); an assistant turn's tool_use blocks become its
// tool_calls.
func decodeMessages(raw json.RawMessage, generate bool) ([]chatMessage, *RequestError) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, reqErr("messages", "messages must be an array of messages")
	}
	if len(list) == 0 {
		return nil, reqErr("messages", "messages: at least one message is required")
	}
	var out []chatMessage
	for i, m := range list {
		last := generate && i == len(list)-1
		o, err := decodeObject(fmt.Sprintf("messages[%d]", i), m)
		if err != nil {
			return nil, err
		}
		if err := o.only("role", "content"); err != nil {
			return nil, err
		}
		var role string
		if _, err := o.get("role", &role); err != nil {
			return nil, err
		}
		if role != "user" && role != "assistant" {
			return nil, reqErr(o.name("role"), "%s must be \"user\" or \"assistant\", got %q (put a system prompt in the top-level system field)", o.name("role"), role)
		}
		if last && role == "assistant" {
			// Anthropic continues a final assistant turn (prefill); a chat
			// backend would start a new turn after it instead.
			return nil, reqErr(o.name("role"), "%s: a final assistant message (prefill) is not supported: chat completions backends start a new turn instead of continuing it; end with a user message", o.name("role"))
		}
		content, ok := o.fields["content"]
		if !ok || isNull(content) {
			return nil, reqErr(o.name("content"), "%s: field required", o.name("content"))
		}
		var s string
		if json.Unmarshal(content, &s) == nil {
			out = append(out, chatMessage{Role: role, Content: s})
			continue
		}
		var blocks []json.RawMessage
		if err := json.Unmarshal(content, &blocks); err != nil {
			return nil, reqErr(o.name("content"), "%s must be a string or an array of content blocks", o.name("content"))
		}
		msgs, rerr := decodeBlocks(o.name("content"), role, blocks)
		if rerr != nil {
			return nil, rerr
		}
		out = append(out, msgs...)
	}
	return out, nil
}

func decodeBlocks(path, role string, blocks []json.RawMessage) ([]chatMessage, *RequestError) {
	var (
		tools []chatMessage
		parts []chatPart
		calls []chatToolCall
	)
	for i, raw := range blocks {
		o, err := decodeObject(fmt.Sprintf("%s[%d]", path, i), raw)
		if err != nil {
			return nil, err
		}
		var typ string
		if _, err := o.get("type", &typ); err != nil {
			return nil, err
		}
		switch {
		case typ == "text":
			t, err := textOf(o)
			if err != nil {
				return nil, err
			}
			parts = append(parts, chatPart{Type: "text", Text: t})
		case typ == "image" && role == "user":
			p, err := decodeImage(o)
			if err != nil {
				return nil, err
			}
			parts = append(parts, p)
		case typ == "tool_use" && role == "assistant":
			c, err := decodeToolUse(o)
			if err != nil {
				return nil, err
			}
			calls = append(calls, c)
		case typ == "tool_result" && role == "user":
			m, err := decodeToolResult(o)
			if err != nil {
				return nil, err
			}
			tools = append(tools, m)
		case typ == "":
			return nil, reqErr(o.name("type"), "%s: field required", o.name("type"))
		case typ == "text" || typ == "image" || typ == "tool_use" || typ == "tool_result":
			return nil, reqErr(o.name("type"), "%s: a %s block cannot appear in a %s message", o.name("type"), typ, role)
		default:
			return nil, reqErr(o.name("type"), "%s: content block type %q is not supported (this gateway translates text, image, tool_use and tool_result)", o.name("type"), typ)
		}
	}
	out := tools
	if role == "assistant" {
		m := chatMessage{Role: role, ToolCalls: calls}
		if len(parts) > 0 || len(calls) == 0 {
			m.Content = joinText(parts)
		}
		return append(out, m), nil
	}
	if len(parts) > 0 || len(tools) == 0 {
		out = append(out, chatMessage{Role: role, Content: userContent(parts)})
	}
	return out, nil
}

// joinText is an assistant's text (chat assistants carry a string).
func joinText(parts []chatPart) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

// userContent is a plain string when the turn is all text (what every
// backend reads), parts otherwise.
func userContent(parts []chatPart) any {
	for _, p := range parts {
		if p.Type != "text" {
			return parts
		}
	}
	if len(parts) == 1 {
		return parts[0].Text
	}
	if len(parts) == 0 {
		return ""
	}
	return parts
}

func decodeImage(o object) (chatPart, *RequestError) {
	if err := o.only("type", "source", "cache_control"); err != nil {
		return chatPart{}, err
	}
	if err := o.cacheControl(); err != nil {
		return chatPart{}, err
	}
	raw, ok := o.fields["source"]
	if !ok || isNull(raw) {
		return chatPart{}, reqErr(o.name("source"), "%s: field required", o.name("source"))
	}
	src, err := decodeObject(o.name("source"), raw)
	if err != nil {
		return chatPart{}, err
	}
	var typ string
	if _, err := src.get("type", &typ); err != nil {
		return chatPart{}, err
	}
	switch typ {
	case "base64":
		if err := src.only("type", "media_type", "data"); err != nil {
			return chatPart{}, err
		}
		var mt, data string
		if _, err := src.get("media_type", &mt); err != nil {
			return chatPart{}, err
		}
		switch mt {
		case "image/jpeg", "image/png", "image/gif", "image/webp":
		default:
			return chatPart{}, reqErr(src.name("media_type"), "%s must be image/jpeg, image/png, image/gif or image/webp, got %q", src.name("media_type"), mt)
		}
		if _, err := src.get("data", &data); err != nil {
			return chatPart{}, err
		}
		if data == "" {
			return chatPart{}, reqErr(src.name("data"), "%s: field required", src.name("data"))
		}
		return chatPart{Type: "image_url", ImageURL: &imageURL{URL: "data:" + mt + ";base64," + data}}, nil
	case "url":
		if err := src.only("type", "url"); err != nil {
			return chatPart{}, err
		}
		var u string
		if _, err := src.get("url", &u); err != nil {
			return chatPart{}, err
		}
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			return chatPart{}, reqErr(src.name("url"), "%s must be an http(s) URL", src.name("url"))
		}
		return chatPart{Type: "image_url", ImageURL: &imageURL{URL: u}}, nil
	default:
		return chatPart{}, reqErr(src.name("type"), "%s: image source type %q is not supported (base64 or url)", src.name("type"), typ)
	}
}

func decodeToolUse(o object) (chatToolCall, *RequestError) {
	if err := o.only("type", "id", "name", "input", "cache_control"); err != nil {
		return chatToolCall{}, err
	}
	if err := o.cacheControl(); err != nil {
		return chatToolCall{}, err
	}
	var c chatToolCall
	c.Type = "function"
	for _, f := range []struct {
		name string
		dst  *string
	}{{"id", &c.ID}, {"name", &c.Function.Name}} {
		if _, err := o.get(f.name, f.dst); err != nil {
			return c, err
		}
		if *f.dst == "" {
			return c, reqErr(o.name(f.name), "%s: field required", o.name(f.name))
		}
	}
	input := o.fields["input"]
	if len(input) == 0 || isNull(input) {
		input = json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(input, &obj); err != nil {
		return c, reqErr(o.name("input"), "%s must be an object", o.name("input"))
	}
	var b bytes.Buffer
	if err := json.Compact(&b, input); err != nil {
		return c, reqErr(o.name("input"), "%s must be an object", o.name("input"))
	}
	c.Function.Arguments = b.String()
	return c, nil
}

// toolErrorPrefix marks a tool_result with is_error: chat tool messages have
// no such flag, so the model reads it in the text.
const toolErrorPrefix = "[tool error] "

func decodeToolResult(o object) (chatMessage, *RequestError) {
	if err := o.only("type", "tool_use_id", "content", "is_error", "cache_control"); err != nil {
		return chatMessage{}, err
	}
	if err := o.cacheControl(); err != nil {
		return chatMessage{}, err
	}
	m := chatMessage{Role: "tool"}
	if _, err := o.get("tool_use_id", &m.ToolCallID); err != nil {
		return m, err
	}
	if m.ToolCallID == "" {
		return m, reqErr(o.name("tool_use_id"), "%s: field required", o.name("tool_use_id"))
	}
	var isErr bool
	if _, err := o.get("is_error", &isErr); err != nil {
		return m, err
	}
	text := ""
	if raw, ok := o.fields["content"]; ok && !isNull(raw) {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			text = s
		} else {
			var blocks []json.RawMessage
			if err := json.Unmarshal(raw, &blocks); err != nil {
				return m, reqErr(o.name("content"), "%s must be a string or an array of text blocks", o.name("content"))
			}
			texts := make([]string, 0, len(blocks))
			for i, b := range blocks {
				t, err := decodeTextBlock(fmt.Sprintf("%s[%d]", o.name("content"), i), b)
				if err != nil {
					// Chat tool messages carry text only.
					err.Message += " (a tool result can carry only text through chat completions)"
					return m, err
				}
				texts = append(texts, t)
			}
			text = strings.Join(texts, "\n")
		}
	}
	if isErr {
		text = toolErrorPrefix + text
	}
	m.Content = text
	return m, nil
}

func decodeTools(raw json.RawMessage) ([]chatTool, *RequestError) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, reqErr("tools", "tools must be an array of tools")
	}
	out := make([]chatTool, 0, len(list))
	seen := map[string]bool{}
	for i, t := range list {
		o, err := decodeObject(fmt.Sprintf("tools[%d]", i), t)
		if err != nil {
			return nil, err
		}
		var typ string
		if _, err := o.get("type", &typ); err != nil {
			return nil, err
		}
		if typ != "" && typ != "custom" {
			return nil, reqErr(o.name("type"), "%s: tool type %q is not supported (Anthropic's server tools run at Anthropic; this gateway translates custom tools with an input_schema)", o.name("type"), typ)
		}
		if err := o.only("type", "name", "description", "input_schema", "cache_control"); err != nil {
			return nil, err
		}
		if err := o.cacheControl(); err != nil {
			return nil, err
		}
		var d chatToolDef
		if _, err := o.get("name", &d.Name); err != nil {
			return nil, err
		}
		if d.Name == "" {
			return nil, reqErr(o.name("name"), "%s: field required", o.name("name"))
		}
		if seen[d.Name] {
			return nil, reqErr(o.name("name"), "%s: tool name %q is used twice", o.name("name"), d.Name)
		}
		seen[d.Name] = true
		if _, err := o.get("description", &d.Description); err != nil {
			return nil, err
		}
		schema, ok := o.fields["input_schema"]
		if !ok || isNull(schema) {
			return nil, reqErr(o.name("input_schema"), "%s: field required", o.name("input_schema"))
		}
		so, err := decodeObject(o.name("input_schema"), schema)
		if err != nil {
			return nil, err
		}
		var st string
		if _, err := so.get("type", &st); err != nil {
			return nil, err
		}
		if st != "object" {
			return nil, reqErr(so.name("type"), "%s must be \"object\", got %q", so.name("type"), st)
		}
		var b bytes.Buffer
		_ = json.Compact(&b, schema) // valid: it decoded above
		d.Parameters = b.Bytes()
		out = append(out, chatTool{Type: "function", Function: d})
	}
	return out, nil
}

// decodeToolChoice maps auto/any/tool/none to chat's auto/required/named
// function/none, and disable_parallel_tool_use to parallel_tool_calls.
func decodeToolChoice(raw json.RawMessage, tools []chatTool) (any, *bool, *RequestError) {
	o, err := decodeObject("tool_choice", raw)
	if err != nil {
		return nil, nil, err
	}
	var typ string
	if _, err := o.get("type", &typ); err != nil {
		return nil, nil, err
	}
	var choice any
	switch typ {
	case "auto", "any", "none":
		if typ == "none" {
			if err := o.only("type"); err != nil {
				return nil, nil, err
			}
		} else if err := o.only("type", "disable_parallel_tool_use"); err != nil {
			return nil, nil, err
		}
		choice = map[string]string{"auto": "auto", "any": "required", "none": "none"}[typ]
	case "tool":
		if err := o.only("type", "name", "disable_parallel_tool_use"); err != nil {
			return nil, nil, err
		}
		var name string
		if _, err := o.get("name", &name); err != nil {
			return nil, nil, err
		}
		if name == "" {
			return nil, nil, reqErr("tool_choice.name", "tool_choice.name: field required")
		}
		if !slices.ContainsFunc(tools, func(t chatTool) bool { return t.Function.Name == name }) {
			return nil, nil, reqErr("tool_choice.name", "tool_choice.name %q is not one of the tools", name)
		}
		choice = map[string]any{"type": "function", "function": map[string]string{"name": name}}
	case "":
		return nil, nil, reqErr("tool_choice.type", "tool_choice.type: field required")
	default:
		return nil, nil, reqErr("tool_choice.type", "tool_choice.type must be auto, any, tool or none, got %q", typ)
	}
	if len(tools) == 0 {
		if typ == "none" {
			// Nothing to choose from: some backends refuse a tool_choice
			// without tools, so none is said by sending neither.
			return nil, nil, nil
		}
		return nil, nil, reqErr("tool_choice", "tool_choice %q needs tools", typ)
	}
	var disable bool
	if _, err := o.get("disable_parallel_tool_use", &disable); err != nil {
		return nil, nil, err
	}
	if disable {
		f := false
		return choice, &f, nil
	}
	return choice, nil, nil
}
