package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/llmctl/llmctl/pkg/serve/engine/grammar"
	"github.com/llmctl/llmctl/pkg/serve/engine/toolcall"
)

// tooling is a chat request's function tools: how the model writes calls,
// which names are callable, and (tool_choice required or named) the
// grammar that forces a call.
type tooling struct {
	format toolcall.Format
	known  map[string]bool
	forced *grammar.Grammar
}

type toolDef struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// setupTools checks tools and tool_choice. It returns nil when the answer
// is plain text (no tools, or tool_choice "none", which also keeps the
// tools out of the prompt by clearing r.Tools).
func (b *Backend) setupTools(r *request) (*tooling, error) {
	hasTools := len(r.Tools) > 0 && string(r.Tools) != "null"
	var defs []toolDef
	if hasTools {
		if err := json.Unmarshal(r.Tools, &defs); err != nil {
			return nil, badParam("tools", "tools must be an array of {\"type\":\"function\",\"function\":{\"name\":...,\"parameters\":...}}")
		}
		hasTools = len(defs) > 0
	}
	choice, named := "auto", ""
	if len(r.ToolChoice) > 0 && string(r.ToolChoice) != "null" {
		if s, ok := jsonString(r.ToolChoice); ok {
			choice = s
		} else {
			var c struct {
				Type     string `json:"type"`
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			}
			if err := json.Unmarshal(r.ToolChoice, &c); err != nil || c.Type != "function" || c.Function.Name == "" {
				return nil, badParam("tool_choice", "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":...}}")
			}
			choice, named = "named", c.Function.Name
		}
		switch choice {
		case "none", "auto", "required", "named":
		default:
			return nil, badParam("tool_choice", "tool_choice must be \"none\", \"auto\", \"required\" or a named function, not %q", choice)
		}
		if !hasTools && choice != "none" && choice != "auto" {
			return nil, badParam("tool_choice", "tool_choice %q needs tools", choice)
		}
	}
	if !hasTools || choice == "none" {
		r.Tools = nil
		return nil, nil
	}
	t := &tooling{format: toolcall.Generic, known: map[string]bool{}}
	if b.tmpl != nil {
		t.format = toolcall.Detect(b.tmpl.Source())
	}
	var alts []grammar.Alternative
	for i, d := range defs {
		switch {
		case d.Type != "function":
			return nil, badParam("tools", "tools[%d].type must be \"function\"; the embedded engine calls functions only", i)
		case d.Function.Name == "":
			return nil, badParam("tools", "tools[%d].function.name is missing", i)
		case t.known[d.Function.Name]:
			return nil, badParam("tools", "tools[%d].function.name %q is given twice", i, d.Function.Name)
		}
		t.known[d.Function.Name] = true
		if choice == "required" || named == d.Function.Name {
			pre, suf := t.format.Wrap(d.Function.Name)
			var params []byte
			if p := d.Function.Parameters; len(p) > 0 && string(p) != "null" {
				params = p
			}
			alts = append(alts, grammar.Alternative{Prefix: pre, Suffix: suf, Schema: params})
		}
	}
	if named != "" && !t.known[named] {
		return nil, badParam("tool_choice", "tool_choice names %q, which is not among the tools", named)
	}
	if len(alts) > 0 {
		if len(r.ResponseFormat) > 0 && string(r.ResponseFormat) != "null" {
			return nil, badParam("response_format", "response_format cannot be combined with a forced tool call (tool_choice %q)", choice)
		}
		g, err := grammar.OneOf(alts)
		var ue *grammar.UnsupportedError
		switch {
		case errors.As(err, &ue):
			return nil, badParam("tools", "a function's parameters: %v", ue)
		case err != nil:
			return nil, badParam("tools", "a function's parameters: %v", err)
		}
		t.forced = g
	}
	return t, nil
}

// toolsSystemPrompt introduces the tools to a model without a chat
// template, in the Generic call format.
func toolsSystemPrompt(tools json.RawMessage) string {
	return "You can call these functions:\n" + string(tools) +
		"\nTo call one, answer with only a JSON object {\"name\": <function name>, \"arguments\": <JSON object>}."
}

// toolCallsJSON renders the OpenAI tool_calls of an assistant turn as the
// Generic format, for models without a chat template.
func toolCallsJSON(raw json.RawMessage) string {
	var m struct {
		ToolCalls []struct {
			Function struct {
				Name      string          `json:"name"`
				Arguments json.RawMessage `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	var parts []string
	for _, c := range m.ToolCalls {
		args := c.Function.Arguments
		if s, ok := jsonString(args); ok {
			args = json.RawMessage(s)
		}
		name, _ := json.Marshal(c.Function.Name)
		parts = append(parts, fmt.Sprintf(`{"name":%s,"arguments":%s}`, name, args))
	}
	return strings.Join(parts, "\n")
}

// callID names call i of answer id.
func callID(id string, i int) string {
	return fmt.Sprintf("call_%s_%d", strings.TrimPrefix(id, "chatcmpl-"), i)
}

// openAIToolCalls renders parsed calls as the message's OpenAI tool_calls.
func openAIToolCalls(id string, calls []toolcall.Call) []any {
	out := make([]any, len(calls))
	for i, c := range calls {
		out[i] = map[string]any{"id": callID(id, i), "type": "function",
			"function": map[string]any{"name": c.Name, "arguments": c.Arguments}}
	}
	return out
}

// toolEvents queues the chunks for the next piece of a streamed answer
// with tools: content as it is known not to be a call, and each call as
// OpenAI streams it, a first delta with its id and name and then the
// arguments in fragments as they are generated.
func (s *stream) toolEvents(text string, end bool) {
	if s.calls == nil {
		s.calls = s.j.tools.format.NewParser(s.j.tools.known)
	}
	evs := s.calls.Feed(text)
	if end {
		evs = append(evs, s.calls.End()...)
	}
	for _, e := range evs {
		var tc map[string]any
		switch {
		case e.IsStart():
			s.nCalls++
			tc = map[string]any{"index": e.Call, "id": callID(s.id, e.Call), "type": "function",
				"function": map[string]any{"name": e.Name, "arguments": ""}}
		case e.Args != "":
			tc = map[string]any{"index": e.Call, "function": map[string]any{"arguments": e.Args}}
		default:
			s.queue = append(s.queue, s.chunk(map[string]any{"content": e.Text}, e.Text, nil))
			continue
		}
		s.queue = append(s.queue, s.chunk(map[string]any{"tool_calls": []any{tc}}, "", nil))
	}
}
