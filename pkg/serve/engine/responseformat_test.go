package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// responseSchemas are held to on the demo model, whose unconstrained
// answers are King James verses, never JSON.
var responseSchemas = []string{
	`{"type":"object","properties":{"name":{"type":"string","maxLength":20},"age":{"type":"integer"},"admin":{"type":"boolean"}},"required":["name","age","admin"],"additionalProperties":false}`,
	`{"type":"object","properties":{"tags":{"type":"array","items":{"type":"string","minLength":1,"maxLength":8},"minItems":1,"maxItems":3}},"required":["tags"]}`,
	`{"type":"object","properties":{"color":{"enum":["red","green","blue"]},"size":{"enum":[1,12,123]},"ok":{"const":true}},"required":["color","size","ok"]}`,
	`{"type":"object","properties":{"point":{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"}},"required":["x","y"]},"label":{"type":"string","maxLength":10}},"required":["point","label"]}`,
	`{"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":5}`,
	// anyOf with null, a oneOf told apart by a const, a recursive $ref.
	`{"$defs":{"item":{"type":"object","properties":{"id":{"anyOf":[{"type":"integer"},{"type":"null"}]},"kind":{"oneOf":[{"const":"leaf"},{"const":"box"}]},` +
		`"in":{"type":"array","items":{"$ref":"#/$defs/item"},"maxItems":2}},"required":["id","kind","in"]}},"$ref":"#/$defs/item"}`,
}

func compileSchema(t *testing.T, schema string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("s.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("s.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// grammarSeeds is how many seeds the constrained-output tests run: def
// (small under -short or the race detector), or LLMCTL_GRAMMAR_SEEDS when
// set (`make test-grammar` runs 200: minutes at 2 cores, too long for
// make test).
func grammarSeeds(def, small int) int {
	if v, err := strconv.Atoi(os.Getenv("LLMCTL_GRAMMAR_SEEDS")); err == nil && v > 0 {
		return v
	}
	if testing.Short() || raceEnabled {
		return small
	}
	return def
}

// TestResponseFormatAlwaysValid: over many seeds at temperature 1, every
// json_schema answer parses and validates (santhosh-tekuri/jsonschema) and
// every json_object answer is an object, including answers cut short by a
// small max_tokens.
func TestResponseFormatAlwaysValid(t *testing.T) {
	b := demo(t)
	seeds := grammarSeeds(40, 2)
	type result struct {
		schema int
		seed   int
		text   string
		finish string
		err    error
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for si := -1; si < len(responseSchemas); si++ {
		rf := `{"type":"json_object"}`
		if si >= 0 {
			rf = `{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":` + responseSchemas[si] + `}}`
		}
		for seed := range seeds {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				maxTok := 64
				if seed%4 == 0 {
					// Cut short (each schema's shortest answer is at most
					// 34 bytes): the budget rule must still close the value.
					maxTok = 36
				}
				body := fmt.Sprintf(`{"messages":[{"role":"user","content":"Answer in JSON."}],"temperature":1,"seed":%d,"max_tokens":%d,"response_format":%s}`, seed, maxTok, rf)
				resp, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointChat, Body: []byte(body)})
				r := result{schema: si, seed: seed, err: err}
				if err == nil {
					var a answer
					r.err = json.Unmarshal(resp.Body, &a)
					r.text, r.finish = a.Choices[0].Message.Content, a.Choices[0].FinishReason
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	validators := make([]*jsonschema.Schema, len(responseSchemas))
	for i, s := range responseSchemas {
		validators[i] = compileSchema(t, s)
	}
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("schema %d seed %d: %v", r.schema, r.seed, r.err)
		}
		var v any
		if err := json.Unmarshal([]byte(r.text), &v); err != nil {
			t.Errorf("schema %d seed %d (%s): %q does not parse: %v", r.schema, r.seed, r.finish, r.text, err)
			continue
		}
		if r.schema < 0 {
			if _, ok := v.(map[string]any); !ok {
				t.Errorf("json_object seed %d: %q is not an object", r.seed, r.text)
			}
			continue
		}
		if err := validators[r.schema].Validate(v); err != nil {
			t.Errorf("schema %d seed %d: %q does not validate: %v", r.schema, r.seed, r.text, err)
		}
	}
	t.Logf("%d answers, all valid; e.g. %q", len(results), results[len(results)-1].text)
}

func TestResponseFormatRefusals(t *testing.T) {
	b := demo(t)
	for body, want := range map[string]string{
		`{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"d":{"type":"string","format":"date"}},"allOf":[]}}}`: "allOf, format (at properties.d)",
		`{"type":"json_schema","json_schema":{"name":"x","schema":{"oneOf":[{"type":"number"},{"type":"integer"}]}}}`:                                  "oneOf whose alternatives may both match",
		`{"type":"json_schema","json_schema":{"name":"x","schema":{"$ref":"https://example.com/s.json"}}}`:                                             "outside this schema",
		`{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"me":{"$ref":"#"}},"required":["me"]}}}`:              "recursing more than",
		`{"type":"json_schema","json_schema":{"name":"x"}}`:                                                                                            "json_schema.schema",
		`{"type":"xml"}`: `"xml"`,
		`"json"`:         "must be an object",
		`{"type":"json_schema","json_schema":{"schema":{"type":"object","properties":{},"required":["a"]}}}`: `"a"`,
	} {
		_, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointChat,
			Body: []byte(`{"messages":[{"role":"user","content":"x"}],"response_format":` + body + `}`)})
		var re *engine.RequestError
		if !errors.As(err, &re) || re.Status != 400 || re.Param != "response_format" || !strings.Contains(re.Message, want) {
			t.Errorf("%s: got %v, want a 400 on response_format naming %s", body, err, want)
		}
	}
}
