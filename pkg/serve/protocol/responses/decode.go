package responses

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/llmctl/llmctl/internal/decodeerr"
	"github.com/llmctl/llmctl/pkg/serve/apierror"
)

// chatRequest is the chat completions body a Responses request becomes.
// A struct, not a map, so the body is deterministic (golden files).
type chatRequest struct {
	Model             string          `json:"model"`
	Messages          []chatMessage   `json:"messages"`
	MaxTokens         *int64          `json:"max_tokens,omitempty"`
	Temperature       *float64        `json:"temperature,omitempty"`
	TopP              *float64        `json:"top_p,omitempty"`
	Tools             []chatTool      `json:"tools,omitempty"`
	ToolChoice        json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat    json.RawMessage `json:"response_format,omitempty"`
	ReasoningEffort   string          `json:"reasoning_effort,omitempty"`
	User              string          `json:"user,omitempty"`
	Stream            bool            `json:"stream,omitempty"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"` // a string, parts, or null beside tool_calls
	ToolCalls  []chatToolCall  `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
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
	Type     string        `json:"type"`
	Function chatToolFuncs `json:"function"`
}

type chatToolFuncs struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// echo is what the response object repeats of the request.
type echo struct {
	Instructions      *string
	MaxOutputTokens   *int64
	Temperature       *float64
	TopP              *float64
	Tools             json.RawMessage
	ToolChoice        json.RawMessage
	ParallelToolCalls *bool
	Text              json.RawMessage
	Metadata          json.RawMessage
	User              string
	ReasoningEffort   string
	Model             string
}

// topLevel are the request fields this route accepts; any other is refused.
var topLevel = []string{"model", "input", "instructions", "max_output_tokens", "temperature", "top_p",
	"tools", "tool_choice", "parallel_tool_calls", "text", "metadata", "store", "previous_response_id",
	"stream", "user", "safety_identifier", "reasoning", "truncation", "include", "prompt_cache_key"}

func bad(param, format string, a ...any) *apierror.Error {
	return &apierror.Error{Status: http.StatusBadRequest, Type: apierror.TypeInvalidRequest, Code: "invalid_request",
		Param: param, Message: fmt.Sprintf(format, a...)}
}

func unsupported(param, format string, a ...any) *apierror.Error {
	e := bad(param, format, a...)
	e.Code = "unsupported_parameter"
	return e
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// object decodes raw into a field map, refusing keys not in allowed.
func object(raw json.RawMessage, param string, allowed ...string) (map[string]json.RawMessage, *apierror.Error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		if param == "" {
			return nil, bad("", "request body must be a JSON object: %s", errText(err))
		}
		return nil, bad(param, "%s must be an object", param)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the first unknown one named is always the same
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			e := bad(join(param, k), "unknown parameter: '%s'", join(param, k))
			e.Code = "unknown_parameter"
			return nil, e
		}
	}
	return m, nil
}

func errText(err error) string {
	if err == nil {
		return "got null"
	}
	return decodeerr.JSON(err)
}

func join(parent, k string) string {
	if parent == "" {
		return k
	}
	return parent + "." + k
}

// field decodes m[name] into dst when present and not null.
func field(m map[string]json.RawMessage, parent, name string, dst any) *apierror.Error {
	raw, ok := m[name]
	if !ok || isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		p := join(parent, name)
		return bad(p, "invalid type for '%s': %s", p, decodeerr.JSON(err))
	}
	return nil
}

// decode turns a Responses request body into a chat completions request
// and what the answer echoes. Every refusal names its field.
func decode(body []byte) (*chatRequest, *echo, *apierror.Error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil, bad("", "request body is empty; send a JSON object")
	}
	m, aerr := object(body, "", topLevel...)
	if aerr != nil {
		return nil, nil, aerr
	}
	cr := &chatRequest{}
	ec := &echo{}
	if aerr = field(m, "", "model", &cr.Model); aerr != nil {
		return nil, nil, aerr
	}
	if cr.Model == "" {
		return nil, nil, bad("model", "you must provide a model parameter")
	}
	ec.Model = cr.Model
	if aerr = field(m, "", "stream", &cr.Stream); aerr != nil {
		return nil, nil, aerr
	}
	// We keep no responses, so there is nothing to continue from.
	if raw, ok := m["previous_response_id"]; ok && !isNull(raw) {
		return nil, nil, unsupported("previous_response_id", "previous_response_id is not supported: this gateway does not store responses; send the whole conversation in input")
	}
	// store: accepted either way, nothing is ever stored (docs/protocols.md).
	var store bool
	if aerr = field(m, "", "store", &store); aerr != nil {
		return nil, nil, aerr
	}
	var truncation string
	if aerr = field(m, "", "truncation", &truncation); aerr != nil {
		return nil, nil, aerr
	}
	if truncation != "" && truncation != "disabled" {
		return nil, nil, unsupported("truncation", "truncation %q is not supported; only \"disabled\"", truncation)
	}
	var include []string
	if aerr = field(m, "", "include", &include); aerr != nil {
		return nil, nil, aerr
	}
	for _, inc := range include {
		// Codex-style clients always ask for encrypted reasoning; this
		// gateway returns no reasoning items, so there is none to include
		// and the request is answered as asked.
		if inc != "reasoning.encrypted_content" {
			return nil, nil, unsupported("include", "include %q is not supported; only \"reasoning.encrypted_content\" (which adds nothing: no reasoning items are returned)", inc)
		}
	}
	// prompt_cache_key only steers which cache a provider tries; the answer
	// is the same without it, and no backend here routes by it.
	var cacheKey string
	if aerr = field(m, "", "prompt_cache_key", &cacheKey); aerr != nil {
		return nil, nil, aerr
	}
	if aerr = field(m, "", "instructions", &ec.Instructions); aerr != nil {
		return nil, nil, aerr
	}
	if ec.Instructions != nil && *ec.Instructions != "" {
		cr.Messages = append(cr.Messages, chatMessage{Role: "system", Content: jsonString(*ec.Instructions)})
	}
	msgs, aerr := decodeInput(m["input"])
	if aerr != nil {
		return nil, nil, aerr
	}
	cr.Messages = append(cr.Messages, msgs...)
	if aerr = field(m, "", "max_output_tokens", &ec.MaxOutputTokens); aerr != nil {
		return nil, nil, aerr
	}
	if ec.MaxOutputTokens != nil && *ec.MaxOutputTokens < 1 {
		return nil, nil, bad("max_output_tokens", "max_output_tokens must be at least 1, got %d", *ec.MaxOutputTokens)
	}
	cr.MaxTokens = ec.MaxOutputTokens
	if aerr = field(m, "", "temperature", &cr.Temperature); aerr != nil {
		return nil, nil, aerr
	}
	if aerr = field(m, "", "top_p", &cr.TopP); aerr != nil {
		return nil, nil, aerr
	}
	ec.Temperature, ec.TopP = cr.Temperature, cr.TopP
	if aerr = field(m, "", "parallel_tool_calls", &cr.ParallelToolCalls); aerr != nil {
		return nil, nil, aerr
	}
	ec.ParallelToolCalls = cr.ParallelToolCalls
	if aerr = field(m, "", "user", &cr.User); aerr != nil {
		return nil, nil, aerr
	}
	ec.User = cr.User
	// safety_identifier is what OpenAI now calls the end user's id.
	var sid string
	if aerr = field(m, "", "safety_identifier", &sid); aerr != nil {
		return nil, nil, aerr
	}
	if cr.User == "" {
		cr.User = sid
	}
	if raw := m["metadata"]; !isNull(raw) {
		var md map[string]string
		if err := json.Unmarshal(raw, &md); err != nil {
			return nil, nil, bad("metadata", "metadata must be an object of strings: %s", decodeerr.JSON(err))
		}
		ec.Metadata = raw
	}
	if raw := m["reasoning"]; !isNull(raw) {
		rm, aerr := object(raw, "reasoning", "effort", "summary")
		if aerr != nil {
			return nil, nil, aerr
		}
		// A summary of reasoning items: none are returned, so every
		// setting gives the same (empty) summary.
		var summary string
		if aerr = field(rm, "reasoning", "summary", &summary); aerr != nil {
			return nil, nil, aerr
		}
		if !slices.Contains([]string{"", "auto", "concise", "detailed", "none"}, summary) {
			return nil, nil, bad("reasoning.summary", "reasoning.summary %q: want auto, concise, detailed or none", summary)
		}
		if aerr = field(rm, "reasoning", "effort", &cr.ReasoningEffort); aerr != nil {
			return nil, nil, aerr
		}
		ec.ReasoningEffort = cr.ReasoningEffort
	}
	if cr.Tools, aerr = decodeTools(m["tools"]); aerr != nil {
		return nil, nil, aerr
	}
	if len(cr.Tools) > 0 {
		ec.Tools = m["tools"]
	}
	if cr.ToolChoice, aerr = decodeToolChoice(m["tool_choice"]); aerr != nil {
		return nil, nil, aerr
	}
	if cr.ToolChoice != nil {
		ec.ToolChoice = m["tool_choice"]
	}
	if cr.ResponseFormat, aerr = decodeText(m["text"]); aerr != nil {
		return nil, nil, aerr
	}
	if !isNull(m["text"]) {
		ec.Text = m["text"]
	}
	return cr, ec, nil
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// decodeInput turns input (a string, or a list of items) into messages.
func decodeInput(raw json.RawMessage) ([]chatMessage, *apierror.Error) {
	if isNull(raw) {
		return nil, bad("input", "you must provide an input parameter")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []chatMessage{{Role: "user", Content: jsonString(s)}}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, bad("input", "input must be a string or an array of items")
	}
	if len(items) == 0 {
		return nil, bad("input", "input must not be an empty array")
	}
	var out []chatMessage
	for i, it := range items {
		p := fmt.Sprintf("input[%d]", i)
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(it, &head); err != nil {
			return nil, bad(p, "%s must be an object", p)
		}
		switch head.Type {
		case "message", "":
			msg, aerr := decodeMessage(it, p)
			if aerr != nil {
				return nil, aerr
			}
			out = append(out, msg)
		case "function_call":
			m, aerr := object(it, p, "type", "id", "call_id", "name", "arguments", "status")
			if aerr != nil {
				return nil, aerr
			}
			var tc chatToolCall
			tc.Type = "function"
			for _, f := range []struct {
				name string
				dst  *string
			}{{"call_id", &tc.ID}, {"name", &tc.Function.Name}, {"arguments", &tc.Function.Arguments}} {
				if aerr := field(m, p, f.name, f.dst); aerr != nil {
					return nil, aerr
				}
				if *f.dst == "" && f.name != "arguments" {
					return nil, bad(join(p, f.name), "%s.%s is required", p, f.name)
				}
			}
			// Calls the model made in one turn are one assistant message.
			if n := len(out); n > 0 && out[n-1].Role == "assistant" {
				out[n-1].ToolCalls = append(out[n-1].ToolCalls, tc)
			} else {
				out = append(out, chatMessage{Role: "assistant", Content: json.RawMessage("null"), ToolCalls: []chatToolCall{tc}})
			}
		case "function_call_output":
			m, aerr := object(it, p, "type", "id", "call_id", "output", "status")
			if aerr != nil {
				return nil, aerr
			}
			var callID string
			if aerr := field(m, p, "call_id", &callID); aerr != nil {
				return nil, aerr
			}
			if callID == "" {
				return nil, bad(p+".call_id", "%s.call_id is required", p)
			}
			content, aerr := decodeContent(m["output"], p+".output", "tool")
			if aerr != nil {
				return nil, aerr
			}
			out = append(out, chatMessage{Role: "tool", Content: content, ToolCallID: callID})
		default:
			return nil, unsupported(p+".type", "input item type %q is not supported; send messages, function_call and function_call_output items", head.Type)
		}
	}
	return out, nil
}

func decodeMessage(raw json.RawMessage, p string) (chatMessage, *apierror.Error) {
	m, aerr := object(raw, p, "type", "id", "role", "content", "status")
	if aerr != nil {
		return chatMessage{}, aerr
	}
	var role string
	if aerr := field(m, p, "role", &role); aerr != nil {
		return chatMessage{}, aerr
	}
	switch role {
	case "user", "assistant", "system":
	case "developer":
		// Chat backends other than OpenAI's know system, not developer.
		role = "system"
	case "":
		return chatMessage{}, bad(p+".role", "%s.role is required", p)
	default:
		return chatMessage{}, bad(p+".role", "%s.role %q is not one of user, assistant, system, developer", p, role)
	}
	content, aerr := decodeContent(m["content"], p+".content", role)
	if aerr != nil {
		return chatMessage{}, aerr
	}
	return chatMessage{Role: role, Content: content}, nil
}

// decodeContent turns a string or a list of content parts into chat
// content: one string when every part is text (what every backend reads),
// chat parts when an image is among them (user messages only).
func decodeContent(raw json.RawMessage, p, role string) (json.RawMessage, *apierror.Error) {
	if isNull(raw) {
		return nil, bad(p, "%s is required", p)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return jsonString(s), nil
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, bad(p, "%s must be a string or an array of content parts", p)
	}
	type chatPart struct {
		Type     string `json:"type"`
		Text     string `json:"text,omitempty"`
		ImageURL *struct {
			URL    string `json:"url"`
			Detail string `json:"detail,omitempty"`
		} `json:"image_url,omitempty"`
	}
	var out []chatPart
	var text strings.Builder
	images := false
	for i, part := range parts {
		pp := fmt.Sprintf("%s[%d]", p, i)
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(part, &head); err != nil {
			return nil, bad(pp, "%s must be an object", pp)
		}
		switch head.Type {
		case "input_text", "output_text", "text":
			m, aerr := object(part, pp, "type", "text", "annotations", "logprobs")
			if aerr != nil {
				return nil, aerr
			}
			var t string
			if aerr := field(m, pp, "text", &t); aerr != nil {
				return nil, aerr
			}
			text.WriteString(t)
			out = append(out, chatPart{Type: "text", Text: t})
		case "input_image":
			if role != "user" {
				return nil, unsupported(pp+".type", "input_image is only supported in user messages")
			}
			m, aerr := object(part, pp, "type", "image_url", "detail")
			if aerr != nil {
				return nil, aerr
			}
			var url, detail string
			if aerr := field(m, pp, "image_url", &url); aerr != nil {
				return nil, aerr
			}
			if url == "" {
				return nil, unsupported(pp+".image_url", "%s needs an image_url (file_id is not supported)", pp)
			}
			if aerr := field(m, pp, "detail", &detail); aerr != nil {
				return nil, aerr
			}
			cp := chatPart{Type: "image_url"}
			cp.ImageURL = &struct {
				URL    string `json:"url"`
				Detail string `json:"detail,omitempty"`
			}{url, detail}
			out = append(out, cp)
			images = true
		default:
			return nil, unsupported(pp+".type", "content part type %q is not supported; use input_text or input_image", head.Type)
		}
	}
	if !images {
		return jsonString(text.String()), nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, bad(p, "cannot encode %s: %v", p, err)
	}
	return b, nil
}

// decodeTools keeps function tools; any other kind is refused by name.
func decodeTools(raw json.RawMessage) ([]chatTool, *apierror.Error) {
	if isNull(raw) {
		return nil, nil
	}
	var tools []json.RawMessage
	if err := json.Unmarshal(raw, &tools); err != nil {
		return nil, bad("tools", "tools must be an array")
	}
	out := make([]chatTool, 0, len(tools))
	for i, t := range tools {
		p := fmt.Sprintf("tools[%d]", i)
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(t, &head); err != nil {
			return nil, bad(p, "%s must be an object", p)
		}
		if head.Type != "function" {
			return nil, unsupported(p+".type", "tool type %q is not supported; only function tools are", head.Type)
		}
		m, aerr := object(t, p, "type", "name", "description", "parameters", "strict")
		if aerr != nil {
			return nil, aerr
		}
		ct := chatTool{Type: "function"}
		if aerr := field(m, p, "name", &ct.Function.Name); aerr != nil {
			return nil, aerr
		}
		if ct.Function.Name == "" {
			return nil, bad(p+".name", "%s.name is required", p)
		}
		if aerr := field(m, p, "description", &ct.Function.Description); aerr != nil {
			return nil, aerr
		}
		if aerr := field(m, p, "strict", &ct.Function.Strict); aerr != nil {
			return nil, aerr
		}
		if raw := m["parameters"]; !isNull(raw) {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(raw, &obj); err != nil {
				return nil, bad(p+".parameters", "%s.parameters must be a JSON schema object", p)
			}
			ct.Function.Parameters = raw
		}
		out = append(out, ct)
	}
	return out, nil
}

// decodeToolChoice maps "none"/"auto"/"required" and {"type":"function",
// "name"} to chat's tool_choice.
func decodeToolChoice(raw json.RawMessage) (json.RawMessage, *apierror.Error) {
	if isNull(raw) {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "none", "auto", "required":
			return jsonString(s), nil
		}
		return nil, bad("tool_choice", "tool_choice %q is not one of none, auto, required", s)
	}
	m, aerr := object(raw, "tool_choice", "type", "name")
	if aerr != nil {
		return nil, aerr
	}
	var typ, name string
	if aerr := field(m, "tool_choice", "type", &typ); aerr != nil {
		return nil, aerr
	}
	if typ != "function" {
		return nil, unsupported("tool_choice.type", "tool_choice.type %q is not supported; only function", typ)
	}
	if aerr := field(m, "tool_choice", "name", &name); aerr != nil {
		return nil, aerr
	}
	if name == "" {
		return nil, bad("tool_choice.name", "tool_choice.name is required")
	}
	b, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": name}})
	return b, nil
}

// decodeText maps text.format to chat's response_format.
func decodeText(raw json.RawMessage) (json.RawMessage, *apierror.Error) {
	if isNull(raw) {
		return nil, nil
	}
	m, aerr := object(raw, "text", "format")
	if aerr != nil {
		return nil, aerr
	}
	if isNull(m["format"]) {
		return nil, nil
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(m["format"], &head); err != nil {
		return nil, bad("text.format", "text.format must be an object")
	}
	switch head.Type {
	case "text":
		if _, aerr := object(m["format"], "text.format", "type"); aerr != nil {
			return nil, aerr
		}
		return nil, nil
	case "json_object":
		if _, aerr := object(m["format"], "text.format", "type"); aerr != nil {
			return nil, aerr
		}
		return json.RawMessage(`{"type":"json_object"}`), nil
	case "json_schema":
		f, aerr := object(m["format"], "text.format", "type", "name", "schema", "strict", "description")
		if aerr != nil {
			return nil, aerr
		}
		var js struct {
			Name        string          `json:"name"`
			Description string          `json:"description,omitempty"`
			Schema      json.RawMessage `json:"schema"`
			Strict      *bool           `json:"strict,omitempty"`
		}
		if aerr := field(f, "text.format", "name", &js.Name); aerr != nil {
			return nil, aerr
		}
		if js.Name == "" {
			return nil, bad("text.format.name", "text.format.name is required")
		}
		if aerr := field(f, "text.format", "description", &js.Description); aerr != nil {
			return nil, aerr
		}
		if aerr := field(f, "text.format", "strict", &js.Strict); aerr != nil {
			return nil, aerr
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(f["schema"], &obj); err != nil || obj == nil {
			return nil, bad("text.format.schema", "text.format.schema must be a JSON schema object")
		}
		js.Schema = f["schema"]
		b, err := json.Marshal(map[string]any{"type": "json_schema", "json_schema": js})
		if err != nil {
			return nil, bad("text.format", "cannot encode text.format: %v", err)
		}
		return b, nil
	default:
		return nil, unsupported("text.format.type", "text.format.type %q is not supported; use text, json_object or json_schema", head.Type)
	}
}
