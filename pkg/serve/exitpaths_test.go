package serve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
)

// exitBilling is a Reserver and Admitter counting what a request settles.
type exitBilling struct {
	mu       sync.Mutex
	settles  []billing.Usage
	dones    []billing.Usage
	noCredit bool
}

func (b *exitBilling) Reserve(context.Context, billing.ReserveRequest) (billing.Hold, error) {
	if b.noCredit {
		return nil, fmt.Errorf("tenant t1: %w", billing.ErrInsufficientQuota)
	}
	return exitHold{b}, nil
}

func (b *exitBilling) Admit(context.Context, billing.Principal, string, int64) (billing.Ticket, error) {
	return exitTicket{b}, nil
}

type exitHold struct{ b *exitBilling }

func (h exitHold) Settle(_ context.Context, u billing.Usage) {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	h.b.settles = append(h.b.settles, u)
}

type exitTicket struct{ b *exitBilling }

func (exitTicket) Header() http.Header { return nil }
func (t exitTicket) Done(_ context.Context, u billing.Usage) {
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	t.b.dones = append(t.b.dones, u)
}

// panicky is a Backend that panics, in Do or after a stream's first event:
// the one failure no HTTP double can produce.
type panicky struct{ inDo bool }

func (p panicky) Name() string                             { return "panicky" }
func (p panicky) Models(context.Context) ([]string, error) { return []string{"panic-model"}, nil }
func (p panicky) Do(context.Context, *Request) (*Response, error) {
	if p.inDo {
		panic("backend bug in Do")
	}
	return &Response{Events: &panicStream{}}, nil
}

type panicStream struct{ sent bool }

func (s *panicStream) Next() ([]byte, error) {
	if !s.sent {
		s.sent = true
		return []byte(`{"choices":[{"delta":{"content":"hi"}}]}`), nil
	}
	panic("backend bug in Next")
}
func (s *panicStream) Usage() *billing.Usage { return nil }
func (s *panicStream) Close() error          { return nil }

// TestSettledAndReleasedOnceOnEveryExit drives a request down each way it
// can end and checks the hold was settled and the ticket done exactly once
// (the hold not at all when it was never taken), and that no backend slot
// stays leased.
func TestSettledAndReleasedOnceOnEveryExit(t *testing.T) {
	cases := []struct {
		name    string
		model   string
		prompt  string
		stream  bool
		cancel  bool // leave after the first event
		inDo    bool
		noHold  bool // refused before a hold
		status  int
		charged bool // completion tokens charged
	}{
		{name: "plain answer", prompt: "tokens=3", status: 200, charged: true},
		{name: "stream answer", prompt: "tokens=3", stream: true, status: 200, charged: true},
		{name: "upstream 5xx", prompt: "status=500", status: 502},
		{name: "upstream 4xx passed through", prompt: "status=400", status: 400},
		{name: "stream broke mid-way", prompt: "tokens=9 fail-after=2", stream: true, status: 200, charged: true},
		{name: "client left mid-stream", prompt: "tokens=200 gap=5ms", stream: true, cancel: true, charged: true},
		// A panic ends the request before its usage is known: the hold is
		// settled (released) at zero, as before the settlement value.
		{name: "panic mid-stream", model: "panic-model", stream: true, status: 200},
		{name: "panic in Do", model: "panic-model", inDo: true, status: 500},
		{name: "no credit", prompt: "tokens=3", noHold: true, status: 402},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := upstreamdouble.Start(t, upstreamdouble.Options{})
			bill := &exitBilling{noCredit: c.noHold}
			g, err := New(Options{Auth: exitAuth{}, Admitter: bill, Reserver: bill, MaxAttempts: 1,
				Remotes: []RemoteConfig{{Name: d.Name(), URL: d.URL()}}, Backends: []Backend{panicky{inDo: c.inDo}}})
			if err != nil {
				t.Fatal(err)
			}
			g.CheckBackends(t.Context()) // discovers the models
			srv := httptest.NewServer(g)
			defer srv.Close()
			model := c.model
			if model == "" {
				model = "double-model"
			}
			body := fmt.Sprintf(`{"model":%q,"stream":%v,"messages":[{"role":"user","content":%q}]}`, model, c.stream, c.prompt)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer k")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if c.cancel {
				line, err := bufio.NewReader(resp.Body).ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "data: ") {
					t.Fatalf("first line %q, %v", line, err)
				}
				cancel()
			} else {
				_, _ = bufio.NewReader(resp.Body).WriteTo(discard{})
				if resp.StatusCode != c.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
				}
			}
			resp.Body.Close()

			// The ticket is the last thing settled; wait for it, then look
			// for a second settlement a moment longer.
			deadline := time.Now().Add(10 * time.Second)
			for bill.count() == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
			bill.mu.Lock()
			defer bill.mu.Unlock()
			wantSettles := 1
			if c.noHold {
				wantSettles = 0
			}
			if len(bill.dones) != 1 || len(bill.settles) != wantSettles {
				t.Fatalf("ticket done %d times, hold settled %d times; want 1 and %d", len(bill.dones), len(bill.settles), wantSettles)
			}
			if wantSettles == 1 && bill.settles[0] != bill.dones[0] {
				t.Errorf("hold settled %+v, ticket %+v: the same usage expected", bill.settles[0], bill.dones[0])
			}
			if got := bill.dones[0].CompletionTokens > 0; got != c.charged && !c.noHold {
				t.Errorf("completion charged %+v, want charged=%v", bill.dones[0], c.charged)
			}
			for _, m := range g.router.members {
				if n := m.outstanding.Load(); n != 0 {
					t.Errorf("backend %s: %d leases outstanding after the request", m.name(), n)
				}
			}
		})
	}
}

func (b *exitBilling) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.dones)
}

type exitAuth struct{}

func (exitAuth) Authenticate(_ context.Context, key string) (billing.Principal, error) {
	if key != "k" {
		return billing.Principal{}, errors.New("unknown key")
	}
	return billing.Principal{TenantID: "t1", KeyID: "k1"}, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestRetryTriesEachBackendOnce: a retry goes to a backend not tried yet,
// so two failing backends see one request each, whatever MaxAttempts.
func TestRetryTriesEachBackendOnce(t *testing.T) {
	d1 := upstreamdouble.Start(t, upstreamdouble.Options{Name: "d1"})
	d2 := upstreamdouble.Start(t, upstreamdouble.Options{Name: "d2"})
	for _, d := range []*upstreamdouble.Double{d1, d2} {
		d.SetFault(upstreamdouble.Fault{Status: 503})
	}
	g, err := New(Options{Auth: exitAuth{}, MaxAttempts: 5,
		Remotes: []RemoteConfig{{Name: "d1", URL: d1.URL()}, {Name: "d2", URL: d2.URL()}}})
	if err != nil {
		t.Fatal(err)
	}
	g.CheckBackends(t.Context())
	srv := httptest.NewServer(g)
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"double-model","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if n1, n2 := d1.Requests(), d2.Requests(); n1 != 1 || n2 != 1 {
		t.Fatalf("backends asked %d and %d times, want once each", n1, n2)
	}
}
