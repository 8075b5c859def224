package toolcall

import (
	"encoding/json"
	"reflect"
	"strings"
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
		// A call is settled as soon as it streams: text after it is content.
		{Llama3, `{"name": "get_weather", "parameters": {"city": "Rome"}} and more`, "and more", []Call{{"get_weather", `{"city":"Rome"}`}}},
		{Llama3, `{"name": "rm", "parameters": {}}`, `{"name": "rm", "parameters": {}}`, nil},
		{Llama3, `{"parameters": {"city": "Rome"}, "name": "get_weather"}`, "", []Call{{"get_weather", `{"city":"Rome"}`}}},
		// Whitespace touching a call is not content; a run before a call
		// stays when content follows it.
		{Hermes, "A\n<tool_call>{\"name\":\"now\",\"arguments\":{}}</tool_call>\nB  ", "A\nB", []Call{{"now", `{}`}}},
		{Hermes, "  no call  ", "  no call  ", nil},
		{Hermes, "<tool<tool_call>{\"name\":\"now\",\"arguments\":{}}", "<tool", []Call{{"now", `{}`}}},
		// Cut off or broken after the call started: the call keeps what
		// the model wrote, as OpenAI's arguments do.
		{Hermes, "<tool_call>{\"name\":\"get_weather\",\"arguments\":{\"city\": \"Pa", "", []Call{{"get_weather", `{"city":"Pa`}}},
		{Generic, `{"name":"get_weather","arguments":{"n": 1 2}}`, "", []Call{{"get_weather", `{"n":1 2}`}}},
		{Mistral, `[{"name":"now","arguments":{}}] done`, "done", []Call{{"now", `{}`}}},
		{Mistral, `[1, 2]`, `[1, 2]`, nil},
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

// feedPieces runs a parser over answer cut at the given points and joins
// the events as Parse does.
func feedPieces(f Format, answer string, cuts []int) (string, []Call, int) {
	p := f.NewParser(known)
	var evs []Event
	last := 0
	for _, c := range cuts {
		if c > last && c <= len(answer) {
			evs = append(evs, p.Feed(answer[last:c])...)
			last = c
		}
	}
	evs = append(evs, p.Feed(answer[last:])...)
	evs = append(evs, p.End()...)
	var text string
	var calls []Call
	fragments := 0
	for _, e := range evs {
		switch {
		case e.IsStart():
			if e.Call != len(calls) {
				panic("call index out of order")
			}
			calls = append(calls, Call{Name: e.Name})
		case e.Args != "":
			calls[e.Call].Arguments += e.Args
			fragments++
		default:
			text += e.Text
		}
	}
	return text, calls, fragments
}

// TestParserPieces: fed a byte at a time, the parser gives the same
// content and calls as Parse, and the arguments arrive in pieces.
func TestParserPieces(t *testing.T) {
	answer := "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": [1, 2]}}\n</tool_call>\n<tool_call>{\"name\":\"now\",\"arguments\":\"{}\"}</tool_call>"
	cuts := make([]int, len(answer))
	for i := range cuts {
		cuts[i] = i + 1
	}
	text, calls, fragments := feedPieces(Hermes, answer, cuts)
	wantText, wantCalls := Hermes.Parse(answer, known)
	if text != wantText || !reflect.DeepEqual(calls, wantCalls) || text != "Checking." || len(calls) != 2 {
		t.Fatalf("pieces %q %v, whole %q %v", text, calls, wantText, wantCalls)
	}
	if calls[0].Arguments != `{"city":"Paris","days":[1,2]}` || fragments < 10 {
		t.Fatalf("arguments %q in %d fragments", calls[0].Arguments, fragments)
	}
}

// FuzzParse: any answer, cut anywhere, gives the same content and calls as
// whole; every call names a known function and its arguments open an
// object; an answer that is a call's wrap of valid arguments gives it.
func FuzzParse(f *testing.F) {
	f.Add("<tool_call>{\"name\":\"now\",\"arguments\":{}}</tool_call>", 0, 3, 9)
	f.Add(`[{"name":"now","arguments":"{}"}]`, 2, 1, 5)
	f.Add(`{"name":"get_weather","parameters":{"a":[1,{"b":null}]}}`, 1, 20, 2)
	f.Add(" x <tool_call> {\"name\" : \"now\" , \"arguments\" : { \"s\" : \"} \\\" {\" } } </tool_call> y", 0, 7, 30)
	formats := []Format{Hermes, Llama3, Mistral, Generic}
	f.Fuzz(func(t *testing.T, answer string, fi, c1, c2 int) {
		format := formats[uint(fi)%uint(len(formats))]
		content, calls := format.Parse(answer, known)
		pc, pcalls, _ := feedPieces(format, answer, []int{c1 % (len(answer) + 1), c2 % (len(answer) + 1)})
		if pc != content || !reflect.DeepEqual(pcalls, calls) {
			t.Fatalf("%s %q: whole %q %v, in pieces %q %v", format, answer, content, calls, pc, pcalls)
		}
		for _, c := range calls {
			if !known[c.Name] || !strings.HasPrefix(c.Arguments, "{") {
				t.Fatalf("bad call %+v from %q", c, answer)
			}
		}
		var obj map[string]any
		if json.Unmarshal([]byte(answer), &obj) == nil && strings.HasPrefix(answer, "{") {
			pre, suf := format.Wrap("now")
			_, calls := format.Parse(pre+answer+suf, known)
			var got map[string]any
			if len(calls) != 1 || json.Unmarshal([]byte(calls[0].Arguments), &got) != nil || !reflect.DeepEqual(got, obj) {
				t.Fatalf("%s: wrapped %q gives %v", format, answer, calls)
			}
		}
	})
}
