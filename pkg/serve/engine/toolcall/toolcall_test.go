package toolcall

import (
	"encoding/json"
	"reflect"
	"testing"
)

var known = map[string]bool{"get_weather": true, "now": true}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		f       Format
		in      string
		content string
		calls   []Call
	}{
		{Hermes, "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", "Let me look.",
			[]Call{{"get_weather", `{"city":"Paris"}`}}},
		{Hermes, "<tool_call>{\"name\":\"now\",\"arguments\":{}}</tool_call><tool_call>{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}", "",
			[]Call{{"now", `{}`}, {"get_weather", `{"city":"Oslo"}`}}},
		{Hermes, "<tool_call>{\"name\":\"rm\",\"arguments\":{}}</tool_call>", "<tool_call>{\"name\":\"rm\",\"arguments\":{}}</tool_call>", nil},
		{Hermes, "plain answer", "plain answer", nil},
		{Llama3, `<|python_tag|>{"name": "get_weather", "parameters": {"city": "Rome"}}`, "", []Call{{"get_weather", `{"city":"Rome"}`}}},
		{Llama3, `{"name": "get_weather", "parameters": {"city": "Rome"}} and more`, `{"name": "get_weather", "parameters": {"city": "Rome"}} and more`, nil},
		{Mistral, `[TOOL_CALLS][{"name":"now","arguments":{}},{"name":"get_weather","arguments":{"city":"Bern"}}]`, "",
			[]Call{{"now", `{}`}, {"get_weather", `{"city":"Bern"}`}}},
		{Generic, ` {"name":"now","arguments":null}`, "", []Call{{"now", `{}`}}},
		{Generic, `{"name":"now","arguments":[1]}`, `{"name":"now","arguments":[1]}`, nil},
	} {
		content, calls := tc.f.Parse(tc.in, known)
		if content != tc.content || !reflect.DeepEqual(calls, tc.calls) {
			t.Errorf("%s %q: got %q %v, want %q %v", tc.f, tc.in, content, calls, tc.content, tc.calls)
		}
	}
}

// TestWrapParses: a forced call's text (prefix, arguments, suffix) parses
// back to the call in every format.
func TestWrapParses(t *testing.T) {
	for _, f := range []Format{Hermes, Llama3, Mistral, Generic} {
		pre, suf := f.Wrap("get_weather")
		content, calls := f.Parse(pre+`{"city":"Lima"}`+suf, known)
		if content != "" || len(calls) != 1 || calls[0] != (Call{"get_weather", `{"city":"Lima"}`}) {
			t.Errorf("%s: %q %v", f, content, calls)
		}
	}
}

func TestDetect(t *testing.T) {
	for tmpl, want := range map[string]Format{
		"{{- '<tool_call>\\n' }}": Hermes,
		"[TOOL_CALLS]":            Mistral,
		"<|start_header_id|>ipython{% if tools is not none %}": Llama3,
		"<|start_header_id|>user":                              Generic,
		"":                                                     Generic,
	} {
		if got := Detect(tmpl); got != want {
			t.Errorf("Detect(%q) = %s, want %s", tmpl, got, want)
		}
	}
}

// FuzzParse: any answer parses without panicking; every call found names a
// known function and carries a JSON object.
func FuzzParse(f *testing.F) {
	f.Add("<tool_call>{\"name\":\"now\",\"arguments\":{}}</tool_call>", 0)
	f.Add(`[{"name":"now","arguments":"{}"}]`, 2)
	f.Add(`{"name":"get_weather","parameters":{"a":[1,{"b":null}]}}`, 1)
	formats := []Format{Hermes, Llama3, Mistral, Generic}
	f.Fuzz(func(t *testing.T, answer string, fi int) {
		format := formats[uint(fi)%uint(len(formats))]
		_, calls := format.Parse(answer, known)
		for _, c := range calls {
			var obj map[string]any
			if !known[c.Name] || json.Unmarshal([]byte(c.Arguments), &obj) != nil {
				t.Fatalf("bad call %+v from %q", c, answer)
			}
		}
	})
}
