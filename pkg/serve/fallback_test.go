package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
)

// TestFallback: a GPU model whose backend fails or is down is answered by
// its fallback, which says so and is the model held (charged) in the
// ledger; the GPU's own hold is released at zero. A rejection of the
// request itself (4xx) is not a reason to fall back; the GPU back up takes
// the traffic again.
func TestFallback(t *testing.T) {
	gpu := upstreamdouble.Start(t, upstreamdouble.Options{Name: "gpu", Models: []string{"big"}})
	cpu := upstreamdouble.Start(t, upstreamdouble.Options{Name: "cpu", Models: []string{"small"}})
	bill := &exitBilling{}
	g, err := New(Options{Auth: exitAuth{}, Admitter: bill, Reserver: bill,
		Remotes:   []RemoteConfig{{Name: "gpu", URL: gpu.URL()}, {Name: "cpu", URL: cpu.URL()}},
		Fallbacks: map[string][]string{"big": {"small"}}})
	if err != nil {
		t.Fatal(err)
	}
	g.CheckBackends(t.Context())
	srv := httptest.NewServer(g)
	defer srv.Close()
	ask := func(prompt string) (status int, model, header string) {
		t.Helper()
		before := bill.count()
		body := `{"model":"big","messages":[{"role":"user","content":"` + prompt + `"}]}`
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var v struct{ Model string }
		_ = json.Unmarshal(b, &v)
		waitFor(t, "the request to settle", func() bool { return bill.count() == before+1 })
		return resp.StatusCode, v.Model, resp.Header.Get(fallbackHeader)
	}
	holds := bill.take
	fallbacks := g.queueMetrics.fallbacks.WithLabelValues("big", "small")

	if st, model, h := ask("tokens=3"); st != 200 || model != "big" || h != "" {
		t.Fatalf("healthy: %d %q %q", st, model, h)
	}
	holds()

	gpu.SetFault(upstreamdouble.Fault{Status: 503})
	st, model, h := ask("tokens=3")
	if st != 200 || model != "small" || h != "small" {
		t.Fatalf("gpu failing: %d model %q header %q, want 200 from small", st, model, h)
	}
	models, settles := holds()
	if !slices.Equal(models, []string{"big", "small"}) || len(settles) != 2 ||
		settles[0] != (billing.Usage{}) || settles[1].CompletionTokens != 3 {
		t.Fatalf("holds %v settled %v: want big released at zero, small charged 3 tokens", models, settles)
	}

	gpu.SetFault(upstreamdouble.Fault{})
	if st, _, h := ask("status=400"); st != 400 || h != "" {
		t.Fatalf("a 4xx fell back: %d %q", st, h)
	}
	holds()

	gpu.Down()
	g.CheckBackends(t.Context()) // the active check sees it down
	st, model, h = ask("tokens=2")
	models, _ = holds()
	if st != 200 || model != "small" || h != "small" || !slices.Equal(models, []string{"small"}) {
		t.Fatalf("gpu down: %d %q %q, holds %v; want small held only", st, model, h, models)
	}
	if v := testutil.ToFloat64(fallbacks); v != 2 {
		t.Errorf("llmctl_fallbacks_total{big→small} = %v, want 2", v)
	}

	if err := gpu.Up(); err != nil {
		t.Fatal(err)
	}
	g.CheckBackends(t.Context())
	if st, model, h := ask("tokens=1"); st != 200 || model != "big" || h != "" {
		t.Fatalf("gpu back: %d %q %q", st, model, h)
	}
}

// TestCapacityRefusalAndFallbackOnQueue: with the only slot taken and the
// wait run out (the client's own, x-llmctl-max-wait, shorter than the
// queue's), a request is 429 capacity_exceeded with Retry-After, or, with
// FallbackOnQueue, answered by the fallback model. A bad header is a 400.
func TestCapacityRefusalAndFallbackOnQueue(t *testing.T) {
	for _, onQueue := range []bool{false, true} {
		gpu := upstreamdouble.Start(t, upstreamdouble.Options{Name: "gpu", Models: []string{"big"}})
		cpu := upstreamdouble.Start(t, upstreamdouble.Options{Name: "cpu", Models: []string{"small"}})
		bill := &exitBilling{}
		g, err := New(Options{Auth: exitAuth{}, Admitter: bill, Reserver: bill,
			Remotes:   []RemoteConfig{{Name: "gpu", URL: gpu.URL(), MaxConc: 1}, {Name: "cpu", URL: cpu.URL()}},
			Fallbacks: map[string][]string{"big": {"small"}}, FallbackOnQueue: onQueue,
			Queue: QueueOptions{MaxWait: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		g.CheckBackends(t.Context())
		srv := httptest.NewServer(g)
		ctx, cancel := context.WithCancel(t.Context())
		body := `{"model":"big","stream":true,"messages":[{"role":"user","content":"tokens=50 stall-after=1"}]}`
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer k")
		running, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if line, _ := bufio.NewReader(running.Body).ReadString('\n'); !strings.HasPrefix(line, "data: ") {
			t.Fatalf("running: %q", line)
		}
		req, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"big","messages":[{"role":"user","content":"tokens=2"}]}`))
		req.Header.Set("Authorization", "Bearer k")
		req.Header.Set(maxWaitHeader, "0.03") // the client's wait, shorter than the minute configured
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if onQueue {
			if resp.StatusCode != 200 || resp.Header.Get(fallbackHeader) != "small" {
				t.Errorf("fallbackOnQueue: %d %q %s", resp.StatusCode, resp.Header.Get(fallbackHeader), b)
			}
		} else if resp.StatusCode != 429 || !strings.Contains(string(b), "capacity_exceeded") || resp.Header.Get("Retry-After") == "" {
			t.Errorf("queue wait ran out: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
		req, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"big","messages":[{"role":"user","content":"tokens=2"}]}`))
		req.Header.Set("Authorization", "Bearer k")
		req.Header.Set(maxWaitHeader, "soon")
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
			t.Errorf("a bad %s header: %v %v, want 400", maxWaitHeader, resp, err)
		} else {
			resp.Body.Close()
		}
		cancel()
		running.Body.Close()
		srv.Close()
	}
}
