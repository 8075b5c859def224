package serve

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
)

// queueGateway is a gateway in front of one upstream double with one slot.
func queueGateway(t *testing.T, qo QueueOptions) (*Gateway, *httptest.Server, *upstreamdouble.Double, *exitBilling) {
	t.Helper()
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	bill := &exitBilling{}
	g, err := New(Options{Auth: exitAuth{}, Admitter: bill, Reserver: bill, Queue: qo,
		Remotes: []RemoteConfig{{Name: d.Name(), URL: d.URL(), MaxConc: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	g.CheckBackends(t.Context())
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, srv, d, bill
}

func chatRequest(ctx context.Context, t *testing.T, url, key, id, prompt string, stream bool) *http.Request {
	t.Helper()
	body := fmt.Sprintf(`{"model":"double-model","stream":%v,"messages":[{"role":"user","content":%q}]}`, stream, prompt)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Request-Id", id)
	return req
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestQueuedClientLeaves: a request waiting for the only slot whose client
// disconnects leaves the queue at once, is never forwarded (the double
// counts one request, the running one) and never admitted nor charged.
func TestQueuedClientLeaves(t *testing.T) {
	g, srv, d, bill := queueGateway(t, QueueOptions{})
	ctx1, cancel1 := context.WithCancel(t.Context())
	defer cancel1()
	resp1, err := http.DefaultClient.Do(chatRequest(ctx1, t, srv.URL, "kA", "running", "tokens=50 stall-after=1", true))
	if err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(resp1.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("running stream: %q %v", line, err)
	}

	ctx2, cancel2 := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(chatRequest(ctx2, t, srv.URL, "kB", "queued", "tokens=3", false))
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("queued request answered %d", resp.StatusCode)
		}
		done <- err
	}()
	waitFor(t, "the request to queue", func() bool { return g.router.q.n.Load() == 1 })
	depth := g.router.q.m.depth.WithLabelValues("double-model", PriorityNormal)
	if v := testutil.ToFloat64(depth); v != 1 {
		t.Errorf("queue depth gauge %v, want 1", v)
	}
	cancel2()
	<-done
	waitFor(t, "the request to leave the queue", func() bool { return g.router.q.n.Load() == 0 })
	if v := testutil.ToFloat64(depth); v != 0 {
		t.Errorf("queue depth gauge %v after leaving, want 0", v)
	}

	cancel1()
	resp1.Body.Close()
	waitFor(t, "the running request to settle", func() bool { return bill.count() == 1 })
	time.Sleep(50 * time.Millisecond) // a forwarded or charged leaver would show by now
	if n := d.Requests(); n != 1 {
		t.Errorf("upstream saw %d requests, want 1 (the queued one never forwarded)", n)
	}
	if _, ok := d.Record("queued"); ok {
		t.Error("the queued request reached the upstream")
	}
	bill.mu.Lock()
	defer bill.mu.Unlock()
	if len(bill.dones) != 1 || len(bill.settles) != 1 {
		t.Errorf("admitted %d, settled %d; want the running request only", len(bill.dones), len(bill.settles))
	}
	if n := g.router.members[0].outstanding.Load(); n != 0 {
		t.Errorf("%d slots still leased", n)
	}
}

// TestQueueFairnessOverHTTP: tenant A keeps 40 requests waiting on the one
// slot; tenant B sends one every 200 ms. Counted in the upstream's arrival
// order, each B request starts after at most one A request that started
// after B was sent, plus at most one that may start while B's request is
// on its way into the queue. B's waits are logged, not asserted.
func TestQueueFairnessOverHTTP(t *testing.T) {
	_, srv, d, _ := queueGateway(t, QueueOptions{})
	const service = "tokens=2 delay=40ms"
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			resp, err := http.DefaultClient.Do(chatRequest(t.Context(), t, srv.URL, "kA", fmt.Sprintf("a%d", i), service, false))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	waitFor(t, "A's backlog", func() bool { return d.Requests() >= 1 })
	var waits []time.Duration
	var mu sync.Mutex
	for i := range 6 {
		time.Sleep(200 * time.Millisecond)
		id := fmt.Sprintf("b%d", i)
		sentAt := d.Requests()
		start := time.Now()
		resp, err := http.DefaultClient.Do(chatRequest(t.Context(), t, srv.URL, "kB", id, service, false))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", id, resp.StatusCode)
		}
		mu.Lock()
		waits = append(waits, time.Since(start))
		mu.Unlock()
		order := d.Records()
		at := slices.IndexFunc(order, func(r upstreamdouble.Record) bool { return r.RequestID == id })
		if ahead := at - int(sentAt); ahead > 2 {
			t.Errorf("%s started after %d of A's requests that started after it was sent, want at most 2", id, ahead)
		}
	}
	wg.Wait()
	slices.Sort(waits)
	t.Logf("B's request time (40 ms service): min %v median %v max %v", waits[0], waits[len(waits)/2], waits[len(waits)-1])
}
