// Package toolcall knows how chat models write function calls: which
// format a model uses (chosen from its chat template), the text that wraps
// a forced call, and the parser that turns an answer back into OpenAI
// tool_calls.
package toolcall

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Format is a model's way of writing tool calls.
type Format string

const (
	// Hermes is Hermes/Qwen2.5/Qwen3: <tool_call>{"name":..,"arguments":..}</tool_call>.
	Hermes Format = "hermes"
	// Llama3 is Llama 3.x: a bare JSON object {"name":..,"parameters":..}.
	Llama3 Format = "llama3"
	// Mistral is [TOOL_CALLS][{"name":..,"arguments":..}] (the marker is a
	// control token, so the text starts at the array).
	Mistral Format = "mistral"
	// Generic is for models without a known format (and without a
	// template): the answer is one JSON object {"name":..,"arguments":..}.
	Generic Format = "generic"
)

// Detect picks the format from the chat template's text.
func Detect(template string) Format {
	switch {
	case strings.Contains(template, "<tool_call>"):
		return Hermes
	case strings.Contains(template, "[TOOL_CALLS]"):
		return Mistral
	case strings.Contains(template, "<|start_header_id|>") && strings.Contains(template, "tools"):
		return Llama3
	}
	return Generic
}

// Wrap returns the text before and after a call's arguments when a call to
// name is forced: the answer is prefix, the arguments object, suffix.
func (f Format) Wrap(name string) (prefix, suffix string) {
	q, _ := json.Marshal(name)
	switch f {
	case Hermes:
		return "<tool_call>\n" + `{"name":` + string(q) + `,"arguments":`, "}\n</tool_call>"
	case Llama3:
		return `{"name":` + string(q) + `,"parameters":`, "}"
	case Mistral:
		return `[{"name":` + string(q) + `,"arguments":`, "}]"
	}
	return `{"name":` + string(q) + `,"arguments":`, "}"
}

// Call is one parsed function call; Arguments is compact JSON text.
type Call struct {
	Name      string
	Arguments string
}

// parseCall reads {"name": ..., "arguments" or "parameters": {...}}; the
// arguments may also be a JSON string holding the object.
func parseCall(raw []byte, known map[string]bool) (Call, bool) {
	var c struct {
		Name       string          `json:"name"`
		Arguments  json.RawMessage `json:"arguments"`
		Parameters json.RawMessage `json:"parameters"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&c); err != nil || dec.More() || !known[c.Name] {
		return Call{}, false
	}
	args := c.Arguments
	if len(args) == 0 {
		args = c.Parameters
	}
	var s string
	if json.Unmarshal(args, &s) == nil {
		args = json.RawMessage(s)
	}
	var obj map[string]any
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("{}")
	} else if json.Unmarshal(args, &obj) != nil {
		return Call{}, false
	}
	var b bytes.Buffer
	if err := json.Compact(&b, args); err != nil {
		return Call{}, false
	}
	return Call{Name: c.Name, Arguments: b.String()}, true
}
