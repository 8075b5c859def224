package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

const weatherTools = `[{"type":"function","function":{"name":"get_weather","description":"Weather in a city","parameters":{"type":"object","properties":{"city":{"type":"string","maxLength":12},"days":{"type":"integer"}},"required":["city","days"]}}},` +
	`{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"zone":{"enum":["UTC","CET"]}},"required":["zone"]}}}]`

type toolAnswer struct {
	Choices []struct {
		Message struct {
			Content   *string `json:"content"`
			ToolCalls []struct {
				ID       string `json:"id"`
				Type     string `json:"type"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
}

// TestToolChoiceRequired: with tool_choice required (or a named function)
// every answer is a call to one of the tools whose arguments validate
// against its parameters, finish_reason tool_calls, on the demo model
// (no chat template: the generic format) and on a Hermes-style template.
func TestToolChoiceRequired(t *testing.T) {
	validators := map[string]interface{ Validate(any) error }{
		"get_weather": compileSchema(t, `{"type":"object","properties":{"city":{"type":"string","maxLength":12},"days":{"type":"integer"}},"required":["city","days"]}`),
		"get_time":    compileSchema(t, `{"type":"object","properties":{"zone":{"enum":["UTC","CET"]}},"required":["zone"]}`),
	}
	hermes := demoWithTemplate(t, `{% for m in messages %}<|im_start|>{{ m.role }}{{ '\n' }}{{ m.content }}<|im_end|>{{ '\n' }}{% endfor %}{% if tools %}Tools: {{ tools | tojson }} Call with <tool_call>{"name": ..., "arguments": ...}</tool_call>{% endif %}<|im_start|>assistant{{ '\n' }}`)
	for name, b := range map[string]*engine.Backend{"generic": demo(t), "hermes": hermes} {
		seeds := grammarSeeds(12, 1)
		for seed := range seeds {
			choice := `"required"`
			if seed%3 == 2 {
				choice = `{"type":"function","function":{"name":"get_time"}}`
			}
			body := fmt.Sprintf(`{"messages":[{"role":"user","content":"What is the weather in Ur?"}],"tools":%s,"tool_choice":%s,"temperature":1,"seed":%d,"max_tokens":80}`, weatherTools, choice, seed)
			resp, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointChat, Body: []byte(body), RequestID: "r"})
			if err != nil {
				t.Fatalf("%s seed %d: %v", name, seed, err)
			}
			var a toolAnswer
			if err := json.Unmarshal(resp.Body, &a); err != nil {
				t.Fatal(err)
			}
			c := a.Choices[0]
			if c.FinishReason != "tool_calls" || len(c.Message.ToolCalls) != 1 {
				t.Fatalf("%s seed %d: no tool call: %s", name, seed, resp.Body)
			}
			call := c.Message.ToolCalls[0]
			if call.Type != "function" || call.ID == "" || (seed%3 == 2 && call.Function.Name != "get_time") {
				t.Fatalf("%s seed %d: call %+v", name, seed, call)
			}
			var args any
			if err := json.Unmarshal([]byte(call.Function.Arguments), &args); err != nil {
				t.Fatalf("%s seed %d: arguments %q: %v", name, seed, call.Function.Arguments, err)
			}
			if err := validators[call.Function.Name].Validate(args); err != nil {
				t.Fatalf("%s seed %d: arguments %q do not validate: %v", name, seed, call.Function.Arguments, err)
			}
			// The stream carries the same call, its arguments in fragments as
			// they are generated; openai-go's accumulator puts it together.
			acc, fragments := streamToolCalls(t, b, body)
			if len(acc.Choices) != 1 || acc.Choices[0].FinishReason != "tool_calls" || acc.Choices[0].Message.Content != "" {
				t.Fatalf("%s seed %d: stream %+v", name, seed, acc.Choices)
			}
			got := acc.Choices[0].Message.ToolCalls
			if len(got) != 1 || got[0].ID != call.ID || got[0].Type != "function" || got[0].Function.Name != call.Function.Name ||
				got[0].Function.Arguments != call.Function.Arguments {
				t.Fatalf("%s seed %d: streamed %+v, whole %+v", name, seed, got, call)
			}
			// How many fragments depends on how many tokens were generated
			// between two reads of the stream (under load, several at once),
			// so only their presence is held here; toolcall's
			// TestParserPieces holds the fragmenting itself.
			if fragments[0] < 1 {
				t.Fatalf("%s seed %d: arguments %q never arrived as a fragment", name, seed, call.Function.Arguments)
			}
		}
	}
}

// streamToolCalls streams body through openai-go's ChatCompletionAccumulator
// and counts the argument fragments of each call.
func streamToolCalls(t *testing.T, b *engine.Backend, body string) (openai.ChatCompletionAccumulator, map[int64]int) {
	t.Helper()
	chunks, _ := streamChunks(t, context.Background(), b, &serve.Request{Endpoint: serve.EndpointChat, Body: []byte(body), RequestID: "r"})
	var acc openai.ChatCompletionAccumulator
	fragments := map[int64]int{}
	for _, data := range chunks {
		var c openai.ChatCompletionChunk
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("chunk %s: %v", data, err)
		}
		if !acc.AddChunk(c) {
			t.Fatalf("the accumulator refuses chunk %s", data)
		}
		for _, ch := range c.Choices {
			for _, tc := range ch.Delta.ToolCalls {
				if tc.Function.Arguments != "" {
					fragments[tc.Index]++
				}
				if tc.ID != "" && tc.Function.Arguments != "" {
					t.Fatalf("the first delta of a call carries arguments: %s", data)
				}
			}
		}
	}
	return acc, fragments
}

// TestToolsAutoAndRoundTrip: with tool_choice auto the demo model answers
// in words (no call); a conversation with an assistant call and its tool
// result renders for the next turn, with and without a template.
func TestToolsAutoAndRoundTrip(t *testing.T) {
	history := `[{"role":"user","content":"Weather in Ur?"},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Ur\",\"days\":1}"}}]},` +
		`{"role":"tool","tool_call_id":"call_1","content":"hot"}]`
	hermes := demoWithTemplate(t, `{% for m in messages %}{{ m.role }}: {{ m.content }}{% if m.tool_calls %}<tool_call>{{ m.tool_calls[0].function.arguments | tojson }}</tool_call>{% endif %}{{ '\n' }}{% endfor %}assistant:`)
	for name, b := range map[string]*engine.Backend{"generic": demo(t), "hermes": hermes} {
		body := `{"messages":` + history + `,"tools":` + weatherTools + `,"temperature":0,"max_tokens":12}`
		resp, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointChat, Body: []byte(body)})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var a toolAnswer
		if err := json.Unmarshal(resp.Body, &a); err != nil {
			t.Fatal(err)
		}
		if c := a.Choices[0]; len(c.Message.ToolCalls) != 0 || c.Message.Content == nil || *c.Message.Content == "" || c.FinishReason == "tool_calls" {
			t.Fatalf("%s: %s", name, resp.Body)
		}
	}
}

func TestToolRefusals(t *testing.T) {
	b := demo(t)
	msgs := `"messages":[{"role":"user","content":"x"}]`
	for body, param := range map[string]string{
		`"tools":[{"type":"retrieval"}]`:                    "tools",
		`"tools":{"a":1}`:                                   "tools",
		`"tools":[{"type":"function","function":{}}]`:       "tools",
		`"tool_choice":"required"`:                          "tool_choice",
		`"tool_choice":"sometimes","tools":` + weatherTools: "tool_choice",
		`"tool_choice":{"type":"function","function":{"name":"nope"}},"tools":` + weatherTools:                                                                             "tool_choice",
		`"tool_choice":"required","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string","pattern":"x"}}}}}]`: "tools",
		`"tool_choice":"required","tools":` + weatherTools + `,"response_format":{"type":"json_object"}`:                                                                   "response_format",
	} {
		_, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointChat, Body: []byte(`{` + msgs + `,` + body + `}`)})
		var re *engine.RequestError
		if !errors.As(err, &re) || re.Status != 400 || re.Param != param {
			t.Errorf("%s: got %v, want a 400 on %s", body, err, param)
		} else if strings.Contains(re.Message, "json:") {
			t.Errorf("%s: message in Go's terms: %s", body, re.Message)
		}
	}
}
