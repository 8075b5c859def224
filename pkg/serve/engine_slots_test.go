package serve_test

import (
	"context"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// TestEngineSlotsQueue: the embedded engine is capped at its slots
// (Options.MaxActive), so requests beyond them wait in the admission queue
// (in fair-share and priority order) rather than inside the engine, and
// all are answered. Without the cap no request ever waits in the queue.
func TestEngineSlotsQueue(t *testing.T) {
	eb, err := engine.OpenDemo(engine.Options{Threads: 1, MaxActive: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eb.Close() })
	if eb.Slots() != 1 {
		t.Fatalf("Slots() = %d, want MaxActive 1", eb.Slots())
	}
	f := newFixture(t, func(o *serve.Options) { o.Backends = []serve.Backend{eb} })
	c := openai.NewClient(option.WithBaseURL(f.srv.URL+"/v1/"), option.WithAPIKey("good"), option.WithMaxRetries(0))
	// A burst of requests on one slot: some must wait for it. Bursts
	// repeat (at most 5) in case a loaded machine served one at a time.
	for burst := 0; queueWaits(t, f.gw) == 0; burst++ {
		if burst == 5 {
			t.Fatal("no request waited in the admission queue for the engine's only slot")
		}
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for range 6 {
			wg.Go(func() {
				_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
					Model: engine.DemoName, MaxTokens: openai.Int(48),
					Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("In the beginning")}})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if d := counterWith(t, f.gw, "llmctl_queue_depth", "model", engine.DemoName); d != 0 {
		t.Fatalf("queue depth %v after every request ended", d)
	}
}

// queueWaits counts the waits llmctl_queue_wait_seconds observed.
func queueWaits(t *testing.T, gw *serve.Gateway) uint64 {
	t.Helper()
	mfs, err := gw.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == "llmctl_queue_wait_seconds" {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}
