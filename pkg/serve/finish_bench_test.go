package serve

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmctl/llmctl/internal/cputime"
	"github.com/llmctl/llmctl/pkg/billing"
)

// BenchmarkRequestFinish is what every answered request pays for its
// metrics and access log: the in-flight gauge, the token counters, the
// request counter and duration histogram, and one access-log line through
// the text handler `llmctl serve` logs with (into io.Discard), as a plain
// b.N loop for ns/op, B/op, allocs/op and the process's CPU per op under
// benchstat:
//
//	go test -run '^$' -bench RequestFinish -benchmem -count 6 ./pkg/serve
func BenchmarkRequestFinish(b *testing.B) {
	m, err := newMetrics(prometheus.NewRegistry(), &router{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	g := &Gateway{metrics: m, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	rw := &respWriter{ResponseWriter: httptest.NewRecorder(), status: 200, bytes: 812}
	used := billing.Usage{PromptTokens: 31, CompletionTokens: 64}
	b.ReportAllocs()
	cpu0, n := cputime.Process(), 0
	for b.Loop() {
		n++
		st := newBenchState()
		inflight := g.metrics.children.inFlight.get(st.route)
		inflight.Inc()
		st.model, st.backend, st.tenant, st.keyID = "llama-3-8b", "gpu-a", "t-acme", "k-01"
		st.usage = used
		g.tokenMetrics(st.model, used)
		inflight.Dec()
		g.finish(r, rw, st)
	}
	cputime.Report(b, cpu0, n)
}

// newBenchState makes the request's state on the heap, as serve does (its
// state escapes into the route function).
//
//go:noinline
func newBenchState() *reqState {
	return &reqState{id: "9f86d081884c7d659a2feaa0c55ad015", route: "chat", start: time.Now()}
}
