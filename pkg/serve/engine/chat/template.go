package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ardanlabs/jinja"
)

// Template is a model's own Jinja chat template (tokenizer.chat_template),
// compiled once. Rendering uses github.com/ardanlabs/jinja, a Jinja
// implementation written for exactly these templates (loop.*, namespace(),
// macros, tojson, message.content lists...); docs/engine.md records why it
// was chosen and how it is checked against an independent renderer.
// A Template is safe for concurrent use.
type Template struct {
	src      string
	t        *jinja.Template
	bos, eos string
}

// ErrTemplate wraps every failure to compile or render a template, so the
// caller can answer in the user's terms (the conversation does not fit
// this model's template) rather than with a server error.
var ErrTemplate = errors.New("chat template")

// Compile compiles a chat template. bos and eos are the texts of the
// model's beginning- and end-of-sequence tokens (bos_token, eos_token).
func Compile(src, bos, eos string) (*Template, error) {
	t, err := compileSafe(rewriteTojson(src))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	return &Template{src: src, t: t, bos: bos, eos: eos}, nil
}

// compileSafe turns a panic in the parser (a template it does not expect)
// into an error: the template comes from a model file, not from us.
func compileSafe(src string) (t *jinja.Template, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compile: %v", r)
		}
	}()
	return jinja.Compile(src)
}

// Source is the template text.
func (t *Template) Source() string { return t.src }

// Conversation is what a template renders.
type Conversation struct {
	// Messages are the turns with role and content already checked and
	// flattened to text (content parts joined).
	Messages []Message
	// Raw, when set, holds each message's OpenAI JSON object (same length
	// as Messages); its other fields (tool_calls, tool_call_id, name...)
	// reach the template as given, except that tool-call arguments sent as
	// a JSON string are parsed into an object, as the templates expect.
	Raw []json.RawMessage
	// Tools is the request's tools array (nil or empty: none).
	Tools json.RawMessage
	// AddGenerationPrompt ends the prompt where the assistant's reply
	// begins (true for a request; false renders a finished conversation).
	AddGenerationPrompt bool
	// Now is what strftime_now formats (zero: the current time).
	Now time.Time
}

// Render renders the conversation. Errors (including the template's own
// raise_exception, e.g. "System role not supported") wrap ErrTemplate.
func (t *Template) Render(c Conversation) (string, error) {
	msgs, err := templateMessages(c)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	tools := jinja.None()
	if len(c.Tools) > 0 && string(c.Tools) != "null" {
		if tools, err = FromJSON(c.Tools); err != nil {
			return "", fmt.Errorf("%w: tools: %w", ErrTemplate, err)
		}
		if !tools.IsList() || len(tools.AsList().Items) == 0 {
			tools = jinja.None()
		}
	}
	now := c.Now
	if now.IsZero() {
		now = time.Now()
	}
	vars := map[string]jinja.Value{
		"messages":              msgs,
		"tools":                 tools,
		"add_generation_prompt": jinja.NewBool(c.AddGenerationPrompt),
		"bos_token":             jinja.NewString(t.bos),
		tojsonName:              jinja.NewCallable(tojsonName, tojson),
		"eos_token":             jinja.NewString(t.eos),
		"strftime_now": jinja.NewCallable("strftime_now", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			if len(args) != 1 || !args[0].IsString() {
				return jinja.Undefined(), errors.New("strftime_now takes one format string")
			}
			return jinja.NewString(Strftime(now, args[0].AsString())), nil
		}),
	}
	out, err := renderSafe(t.t, vars)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	return out, nil
}

func renderSafe(t *jinja.Template, vars map[string]jinja.Value) (s string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("render: %v", r)
		}
	}()
	return t.RenderValues(vars)
}

// templateMessages builds the messages list: each message's JSON object
// (key order kept, as Python's dict keeps it) with role and content taken
// from the checked Message.
func templateMessages(c Conversation) (jinja.Value, error) {
	items := make([]jinja.Value, len(c.Messages))
	for i, m := range c.Messages {
		d := jinja.NewDict()
		if i < len(c.Raw) && len(c.Raw[i]) > 0 {
			v, err := FromJSON(c.Raw[i])
			if err != nil {
				return jinja.Undefined(), fmt.Errorf("message %d: %w", i, err)
			}
			if !v.IsDict() {
				return jinja.Undefined(), fmt.Errorf("message %d is not an object", i)
			}
			d = v
		}
		dict := d.AsDict()
		r := m.Role
		if r == "developer" {
			r = "system" // OpenAI's newer name; templates know "system"
		}
		dict.Set("role", jinja.NewString(r))
		// Always a string, "" for an assistant turn that only calls tools
		// (null in the API): templates concatenate it.
		dict.Set("content", jinja.NewString(m.Content))
		if tc, ok := dict.Get("tool_calls"); ok && tc.IsList() {
			for _, call := range tc.AsList().Items {
				if !call.IsDict() {
					continue
				}
				fn, ok := call.AsDict().Get("function")
				if !ok || !fn.IsDict() {
					continue
				}
				if a, ok := fn.AsDict().Get("arguments"); ok && a.IsString() {
					if obj, err := FromJSON([]byte(a.AsString())); err == nil && obj.IsDict() {
						fn.AsDict().Set("arguments", obj)
					}
				}
			}
		}
		items[i] = d
	}
	return jinja.NewList(items), nil
}

// FromJSON decodes one JSON value into a template value, keeping object key
// order (tool parameter schemas are printed in the order they were sent)
// and integers as integers.
func FromJSON(raw []byte) (jinja.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return jinja.Undefined(), err
	}
	if _, err := dec.Token(); err != io.EOF {
		return jinja.Undefined(), errors.New("trailing data after JSON value")
	}
	return v, nil
}

// maxDepth bounds nesting, as encoding/json does, so a hostile request
// cannot exhaust the stack.
const maxDepth = 1000

func decodeValue(dec *json.Decoder, depth int) (jinja.Value, error) {
	if depth > maxDepth {
		return jinja.Undefined(), errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return jinja.Undefined(), err
	}
	switch x := tok.(type) {
	case json.Delim:
		switch x {
		case '{':
			d := jinja.NewDict()
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return jinja.Undefined(), err
				}
				key, ok := k.(string)
				if !ok {
					return jinja.Undefined(), errors.New("object key is not a string")
				}
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return jinja.Undefined(), err
				}
				d.AsDict().Set(key, v)
			}
			if _, err := dec.Token(); err != nil {
				return jinja.Undefined(), err
			}
			return d, nil
		case '[':
			var items []jinja.Value
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return jinja.Undefined(), err
				}
				items = append(items, v)
			}
			if _, err := dec.Token(); err != nil {
				return jinja.Undefined(), err
			}
			if items == nil {
				items = []jinja.Value{}
			}
			return jinja.NewList(items), nil
		}
		return jinja.Undefined(), fmt.Errorf("unexpected %v", x)
	default:
		return jinja.FromGoValue(x), nil
	}
}

// Strftime formats t as Python's time.strftime does for the directives
// chat templates use (%d %b %Y and the like); literal text stays literal and
// an unknown directive is kept as written.
func Strftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		switch format[i] {
		case 'Y':
			b.WriteString(strconv.Itoa(t.Year()))
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'e':
			fmt.Fprintf(&b, "%2d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'I':
			fmt.Fprintf(&b, "%02d", (t.Hour()+11)%12+1)
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'p':
			b.WriteString(t.Format("PM"))
		case 'B':
			b.WriteString(t.Month().String())
		case 'b':
			b.WriteString(t.Month().String()[:3])
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'a':
			b.WriteString(t.Weekday().String()[:3])
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	return b.String()
}
