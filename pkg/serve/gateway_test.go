package serve_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
)

// memAuth is a tiny in-memory Authenticator for unit tests only; the e2e
// tests use the real store through the built binary.
type memAuth map[string]billing.Principal

func (a memAuth) Authenticate(_ context.Context, bearer string) (billing.Principal, error) {
	switch bearer {
	case "revoked":
		return billing.Principal{}, fmt.Errorf("key: %w", store.ErrRevoked)
	case "expired":
		return billing.Principal{}, fmt.Errorf("key: %w", store.ErrExpired)
	case "suspended": // as the store answers it: also an invalid key
		return billing.Principal{}, fmt.Errorf("key: %w (%w)", store.ErrSuspended, store.ErrInvalidKey)
	case "broken-store":
		return billing.Principal{}, errors.New("database is down")
	}
	p, ok := a[bearer]
	if !ok {
		return billing.Principal{}, fmt.Errorf("key: %w", store.ErrInvalidKey)
	}
	return p, nil
}

var testAuth = memAuth{
	"good":   {TenantID: "t1", KeyID: "k1"},
	"scoped": {TenantID: "t1", KeyID: "k2", Models: []string{"other-model"}},
}

// recorder is a Reserver and Admitter that counts settlements per request.
type recorder struct {
	mu      sync.Mutex
	settled map[string][]billing.Usage
	done    []billing.Usage
	reserve func(billing.ReserveRequest) error
	admit   func() error
}

func newRecorder() *recorder { return &recorder{settled: map[string][]billing.Usage{}} }

func (r *recorder) Reserve(_ context.Context, rr billing.ReserveRequest) (billing.Hold, error) {
	if r.reserve != nil {
		if err := r.reserve(rr); err != nil {
			return nil, err
		}
	}
	return holdFunc(func(u billing.Usage) {
		r.mu.Lock()
		r.settled[rr.RequestID] = append(r.settled[rr.RequestID], u)
		r.mu.Unlock()
	}), nil
}

func (r *recorder) Admit(_ context.Context, _ billing.Principal, _ string, _ int64) (billing.Ticket, error) {
	if r.admit != nil {
		if err := r.admit(); err != nil {
			return nil, err
		}
	}
	return ticketFunc(func(u billing.Usage) {
		r.mu.Lock()
		r.done = append(r.done, u)
		r.mu.Unlock()
	}), nil
}

// settledOnce waits for exactly one settlement of id and returns it.
func (r *recorder) settledOnce(t *testing.T, id string) billing.Usage {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		got := append([]billing.Usage(nil), r.settled[id]...)
		r.mu.Unlock()
		if len(got) > 1 {
			t.Fatalf("request %s settled %d times: %v", id, len(got), got)
		}
		if len(got) == 1 {
			time.Sleep(20 * time.Millisecond) // a second settlement would show now
			r.mu.Lock()
			n := len(r.settled[id])
			r.mu.Unlock()
			if n != 1 {
				t.Fatalf("request %s settled %d times", id, n)
			}
			return got[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s never settled", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type holdFunc func(billing.Usage)

func (f holdFunc) Settle(_ context.Context, u billing.Usage) { f(u) }

type ticketFunc func(billing.Usage)

func (f ticketFunc) Header() http.Header {
	return http.Header{"X-Ratelimit-Remaining-Requests": {"41"}}
}
func (f ticketFunc) Done(_ context.Context, u billing.Usage) { f(u) }

type fixture struct {
	gw  *serve.Gateway
	srv *httptest.Server
	rec *recorder
}

func newFixture(t *testing.T, mutate func(*serve.Options), doubles ...*upstreamdouble.Double) *fixture {
	t.Helper()
	rec := newRecorder()
	opts := serve.Options{Auth: testAuth, Reserver: rec, Admitter: rec, EjectBase: 50 * time.Millisecond}
	for _, d := range doubles {
		opts.Remotes = append(opts.Remotes, serve.RemoteConfig{Name: d.Name(), URL: d.URL()})
	}
	if mutate != nil {
		mutate(&opts)
	}
	gw, err := serve.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	gw.CheckBackends(context.Background())
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return &fixture{gw: gw, srv: srv, rec: rec}
}

func (f *fixture) post(t *testing.T, path, key, body string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func chatBody(stream bool, prompt string) string {
	b, _ := json.Marshal(map[string]any{"model": "double-model", "stream": stream,
		"messages": []any{map[string]any{"role": "user", "content": prompt}}})
	return string(b)
}

func TestChatNonStream(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	f := newFixture(t, nil, d)
	resp := f.post(t, "/v1/chat/completions", "good", chatBody(false, "one two three tokens=4"), "X-Request-Id", "req-1")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Request-Id") != "req-1" {
		t.Errorf("request id not echoed: %q", resp.Header.Get("X-Request-Id"))
	}
	if resp.Header.Get("X-Ratelimit-Remaining-Requests") != "41" {
		t.Errorf("ticket headers missing: %v", resp.Header)
	}
	var out struct {
		Choices []struct{ Message struct{ Content string } }
		Usage   billing.Usage
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	if out.Choices[0].Message.Content != "t1 t2 t3 t4 " || out.Usage.CompletionTokens != 4 {
		t.Fatalf("answer %+v", out)
	}
	got := f.rec.settledOnce(t, "req-1")
	if got != (billing.Usage{PromptTokens: 4, CompletionTokens: 4}) {
		t.Fatalf("settled %+v, want the upstream's usage", got)
	}
	if rec, _ := d.Record("req-1"); rec.Model != "double-model" || !rec.Completed {
		t.Fatalf("double saw %+v", rec)
	}
}

// readSSE returns the data payloads of an SSE body.
func readSSE(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, v)
		}
	}
	return out
}

func TestChatStreamStripsUsageUnlessAsked(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	f := newFixture(t, nil, d)
	for _, asked := range []bool{false, true} {
		t.Run(fmt.Sprint("include_usage=", asked), func(t *testing.T) {
			var m map[string]any
			_ = json.Unmarshal([]byte(chatBody(true, "a b tokens=3")), &m)
			if asked {
				m["stream_options"] = map[string]any{"include_usage": true}
			}
			b, _ := json.Marshal(m)
			id := fmt.Sprint("stream-", asked)
			resp := f.post(t, "/v1/chat/completions", "good", string(b), "X-Request-Id", id)
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			events := readSSE(t, resp.Body)
			if events[len(events)-1] != "[DONE]" {
				t.Fatalf("no [DONE]: %v", events)
			}
			sawUsage := false
			for _, e := range events {
				if strings.Contains(e, `"usage"`) {
					sawUsage = true
				}
			}
			if sawUsage != asked {
				t.Fatalf("usage chunk present=%v, client asked=%v: %v", sawUsage, asked, events)
			}
			// 3 tokens + finish chunk (+ usage) + [DONE]
			want := 5
			if asked {
				want = 6
			}
			if len(events) != want {
				t.Fatalf("%d events, want %d: %v", len(events), want, events)
			}
			if rec, _ := d.Record(id); !rec.IncludeUsage {
				t.Fatal("gateway did not ask upstream for include_usage")
			}
			if got := f.rec.settledOnce(t, id); got != (billing.Usage{PromptTokens: 3, CompletionTokens: 3}) {
				t.Fatalf("settled %+v", got)
			}
		})
	}
}

// TestStreamCutBeforeFirstEventIsRetried: headers came but no event did, so
// nothing reached the client and another backend answers.
func TestStreamCutBeforeFirstEventIsRetried(t *testing.T) {
	a := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	b := upstreamdouble.Start(t, upstreamdouble.Options{Name: "b"})
	a.SetFault(upstreamdouble.Fault{CutStreams: true})
	f := newFixture(t, nil, a, b)
	for i := range 4 {
		resp := f.post(t, "/v1/chat/completions", "good", chatBody(true, "x tokens=2"))
		events := readSSE(t, resp.Body)
		if resp.StatusCode != 200 || len(events) == 0 || events[len(events)-1] != "[DONE]" {
			t.Fatalf("request %d: %d %v", i, resp.StatusCode, events)
		}
	}
	if a.Requests() == 0 || b.Requests() != 4 {
		t.Fatalf("a tried %d times, b served %d of 4", a.Requests(), b.Requests())
	}
	// With every backend cutting, the client gets a clean 502, not a broken 200.
	b.SetFault(upstreamdouble.Fault{CutStreams: true})
	resp := f.post(t, "/v1/chat/completions", "good", chatBody(true, "x"))
	if resp.StatusCode != 502 {
		t.Fatalf("all cut: %d", resp.StatusCode)
	}
}
