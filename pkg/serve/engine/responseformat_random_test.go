package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine/synth"
)

// TestResponseFormatRandomWeights: on a seeded random-weight model with
// the real 32,000-token llama vocabulary, whose unconstrained output is
// noise, constrained answers still parse and validate.
func TestResponseFormatRandomWeights(t *testing.T) {
	b := openRandomModel(t, "ggml-vocab-llama-spm.gguf", synth.Small, 11, 2)
	defer b.Close()
	for si, schema := range []string{responseSchemas[0], responseSchemas[2], responseSchemas[4], responseSchemas[5]} {
		val := compileSchema(t, schema)
		seeds := 6
		if testing.Short() || raceEnabled {
			seeds = 1
		}
		for seed := range seeds {
			body := fmt.Sprintf(`{"messages":[{"role":"user","content":"JSON please"}],"temperature":1,"seed":%d,"max_tokens":48,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":%s}}}`, seed, schema)
			resp, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointChat, Body: []byte(body)})
			if err != nil {
				t.Fatal(err)
			}
			var a answer
			if err := json.Unmarshal(resp.Body, &a); err != nil {
				t.Fatal(err)
			}
			var out any
			text := a.Choices[0].Message.Content
			if err := json.Unmarshal([]byte(text), &out); err != nil {
				t.Fatalf("schema %d seed %d: %q does not parse: %v", si, seed, text, err)
			}
			if err := val.Validate(out); err != nil {
				t.Fatalf("schema %d seed %d: %q does not validate: %v", si, seed, text, err)
			}
		}
	}
}
