package responses

import (
	"testing"

	"github.com/llmctl/llmctl/pkg/serve/protocol"
)

// The pass-through reads usage and the stream's end from the backend's own
// Responses events; everything else is the backend's.
func TestNativeUsageAndEvents(t *testing.T) {
	u, ok := Adapter{}.Usage([]byte(`{"object":"response","usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":3},"output_tokens":5}}`))
	if !ok || u != (protocol.Usage{Prompt: 10, Cached: 3, Completion: 5, PromptSet: true, CompletionSet: true}) {
		t.Fatalf("%+v %v", u, ok)
	}
	if _, ok := (Adapter{}).Usage([]byte(`{"object":"response"}`)); ok {
		t.Fatal("no usage reported, yet ok")
	}
	var su protocol.Usage
	for _, c := range []struct {
		data         string
		output, last bool
	}{
		{`{"type":"response.created","sequence_number":0}`, false, false},
		{`{"type":"response.output_text.delta","delta":"hi"}`, true, false},
		{`{"type":"response.output_text.delta","delta":""}`, false, false},
		{`{"type":"response.function_call_arguments.delta","delta":"{"}`, true, false},
		{`{"type":"response.output_text.done","text":"hi"}`, false, false},
		{`not json`, false, false},
		{`{"type":"response.incomplete","response":{"usage":{"input_tokens":7,"output_tokens":2}}}`, false, true},
	} {
		if o, l := (Adapter{}).Event([]byte(c.data), &su); o != c.output || l != c.last {
			t.Errorf("%s: output %v last %v", c.data, o, l)
		}
	}
	if su.Prompt != 7 || su.Completion != 2 {
		t.Fatalf("stream usage %+v", su)
	}
}

func FuzzNativeEvent(f *testing.F) {
	f.Add([]byte(`{"type":"response.completed","response":{"usage":{"input_tokens":1,"output_tokens":-2}}}`))
	f.Add([]byte(`{"type":"response.output_text.delta","delta":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var u protocol.Usage
		Adapter{}.Event(data, &u)
		v, _ := Adapter{}.Usage(data)
		if u.Prompt < 0 || u.Completion < 0 || v.Prompt < 0 || v.Completion < 0 || v.Cached < 0 {
			t.Fatalf("negative usage from %q: %+v %+v", data, u, v)
		}
	})
}
