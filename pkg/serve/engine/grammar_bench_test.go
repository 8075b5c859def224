package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
	"github.com/llmctl/llmctl/pkg/serve/engine/synth"
)

// BenchmarkGrammarDecode compares decode speed with response_format
// json_object and json_schema against plain text on the same model in the
// same run (docs/benchmarks.md, "Constrained decoding"): the demo model
// (4,096-token vocabulary) and a random-weight qwen2 model with the real
// 151,936-token qwen2 vocabulary, where masking every token costs most.
func BenchmarkGrammarDecode(b *testing.B) {
	models := map[string]func(b *testing.B) *engine.Backend{
		"demo": func(b *testing.B) *engine.Backend {
			be, err := engine.OpenDemo(engine.Options{Threads: 1, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			return be
		},
		"qwen2-vocab": func(b *testing.B) *engine.Backend {
			return openRandomModel(b, "ggml-vocab-qwen2.gguf", synth.Qwen2Tiny, 3, 1)
		},
	}
	formats := []struct{ name, rf string }{
		{"plain", ""},
		{"json_object", `,"response_format":{"type":"json_object"}`},
		{"json_schema", `,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"name":{"type":"string"},"tags":{"type":"array","items":{"type":"string"}}},"required":["name","tags"]}}}`},
	}
	for _, name := range []string{"demo", "qwen2-vocab"} {
		b.Run(name, func(b *testing.B) {
			be := models[name](b)
			defer be.Close()
			rates := map[string]float64{}
			for b.Loop() {
				for _, f := range formats {
					var toks int64
					start := time.Now()
					for seed := range 4 {
						body := fmt.Sprintf(`{"messages":[{"role":"user","content":"Describe the sea."}],"temperature":1,"seed":%d,"max_tokens":64%s}`, seed, f.rf)
						resp, err := be.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointChat, Body: []byte(body)})
						if err != nil {
							b.Fatal(err)
						}
						var a struct {
							Usage struct {
								CompletionTokens int64 `json:"completion_tokens"`
							}
						}
						_ = json.Unmarshal(resp.Body, &a)
						toks += a.Usage.CompletionTokens
					}
					rates[f.name] = float64(toks) / time.Since(start).Seconds()
				}
			}
			for _, f := range formats {
				b.ReportMetric(rates[f.name], f.name+"_tok/s")
			}
			b.ReportMetric(rates["json_object"]/rates["plain"], "json_object/plain")
			b.ReportMetric(rates["json_schema"]/rates["plain"], "json_schema/plain")
		})
	}
}
