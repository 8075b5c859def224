package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// BenchmarkHugePromptRefusal is the time from a 5 MB completions prompt to
// its 400 on the demo model (docs/benchmarks.md, "Refusing a huge prompt").
func BenchmarkHugePromptRefusal(b *testing.B) {
	be, err := engine.OpenDemo(engine.Options{Threads: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	body, _ := json.Marshal(map[string]any{"prompt": hugePrompt})
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		_, err := be.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointCompletions, Body: body})
		var re *engine.RequestError
		if !errors.As(err, &re) || re.Status != 400 {
			b.Fatalf("got %v, want a 400", err)
		}
	}
}
