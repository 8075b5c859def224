package anthropic

import (
	"testing"

	"github.com/llmctl/llmctl/pkg/serve/protocol"
)

// The pass-through reads usage and the stream's end from the backend's own
// Messages events: input_tokens leaves out the cache, the gateway's prompt
// count includes it; message_delta's output count is cumulative.
func TestNativeUsageAndEvents(t *testing.T) {
	u, ok := Adapter{}.Usage([]byte(`{"type":"message","usage":{"input_tokens":10,"cache_creation_input_tokens":1,"cache_read_input_tokens":3,"output_tokens":5}}`))
	if !ok || u != (protocol.Usage{Prompt: 14, Cached: 3, Completion: 5, PromptSet: true, CompletionSet: true}) {
		t.Fatalf("%+v %v", u, ok)
	}
	var su protocol.Usage
	for _, c := range []struct {
		data         string
		output, last bool
	}{
		{`{"type":"message_start","message":{"usage":{"input_tokens":8,"output_tokens":1}}}`, false, false},
		{`{"type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}`, true, false},
		{`{"type":"ping"}`, false, false},
		{`{"type":"message_delta","usage":{"output_tokens":4}}`, false, false},
		{`{"type":"message_stop"}`, false, true},
	} {
		if o, l := (Adapter{}).Event([]byte(c.data), &su); o != c.output || l != c.last {
			t.Errorf("%s: output %v last %v", c.data, o, l)
		}
	}
	if su != (protocol.Usage{Prompt: 8, Completion: 4, PromptSet: true, CompletionSet: true}) {
		t.Fatalf("stream usage %+v", su)
	}
}

func FuzzNativeEvent(f *testing.F) {
	f.Add([]byte(`{"type":"message_start","message":{"usage":{"input_tokens":-1,"cache_read_input_tokens":-5}}}`))
	f.Add([]byte(`{"type":"message_delta","usage":{"output_tokens":3}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var u protocol.Usage
		Adapter{}.Event(data, &u)
		v, _ := Adapter{}.Usage(data)
		if u.Prompt < 0 || u.Completion < 0 || u.Cached < 0 || v.Prompt < 0 || v.Completion < 0 || v.Cached < 0 {
			t.Fatalf("negative usage from %q: %+v %+v", data, u, v)
		}
	})
}
