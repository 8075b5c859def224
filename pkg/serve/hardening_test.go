package serve_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/limits"
	"github.com/llmctl/llmctl/pkg/serve"
)

// rawConn opens a TCP connection to the fixture and writes a request head
// whose body will be sent by the test, byte by byte if it likes.
func (f *fixture) rawConn(t *testing.T, key string, contentLength int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	head := "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	if key != "" {
		head += "Authorization: Bearer " + key + "\r\n"
	}
	head += fmt.Sprintf("Content-Length: %d\r\n\r\n", contentLength)
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	// A bound so that a regression fails instead of hanging the suite.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	return c
}

// readAnswer reads one response off c and then expects the server to close
// the connection (EOF), although the client never finished its body.
func readAnswer(t *testing.T, c net.Conn) (*http.Response, string) {
	t.Helper()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer before the body was complete: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection left open after the answer (read: %v)", err)
	}
	return resp, string(body)
}

// TestNoBodyIsReadBeforeAuthentication: a caller with no key or an unknown
// key is answered 401 from its headers alone and its connection closed,
// while its body is still trickling in (the slow-body attack of issue 21).
func TestNoBodyIsReadBeforeAuthentication(t *testing.T) {
	f := newFixture(t, nil)
	for _, key := range []string{"", "unknown-key"} {
		var conns []net.Conn
		for range 20 {
			c := f.rawConn(t, key, 1<<20)
			if _, err := io.WriteString(c, "{"); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			resp, body := readAnswer(t, c)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "invalid_api_key") {
				t.Fatalf("key %q: %d %s", key, resp.StatusCode, body)
			}
		}
	}
	if b := metricValue(t, f.gw, "llmctl_request_body_bytes_buffered"); b != 0 {
		t.Fatalf("%v body bytes buffered for unauthenticated callers", b)
	}
}

// TestSlowBodyTimesOut: an authenticated body that does not arrive within
// BodyReadTimeout is answered 408 and its connection closed.
func TestSlowBodyTimesOut(t *testing.T) {
	f := newFixture(t, func(o *serve.Options) { o.BodyReadTimeout = 200 * time.Millisecond })
	c := f.rawConn(t, "good", 1000)
	if _, err := io.WriteString(c, `{"model":`); err != nil {
		t.Fatal(err)
	}
	resp, body := readAnswer(t, c)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, "request_timeout") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if b := metricValue(t, f.gw, "llmctl_request_body_bytes_buffered"); b != 0 {
		t.Fatalf("%v bytes still counted against the budget after the timeout", b)
	}
}

// TestBodyBudget: bodies in flight together may not buffer more than
// BodyBudgetBytes; one over it gets 503 at once, and the budget comes back
// when a body is done with.
func TestBodyBudget(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	const size = 40_000
	f := newFixture(t, func(o *serve.Options) {
		o.MaxBodyBytes = size
		o.BodyBudgetBytes = 64 << 10
	}, d)
	body := chatBody(false, "pad tokens=2")
	body += strings.Repeat(" ", size-len(body)) // JSON allows trailing space

	// A holds size+1 bytes of the 64 KiB budget while it stalls.
	a := f.rawConn(t, "good", size)
	if _, err := io.WriteString(a, body[:10]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return metricValue(t, f.gw, "llmctl_request_body_bytes_buffered") == size+1 })

	// B declares as much: it does not fit beside A.
	resp := f.post(t, "/v1/chat/completions", "good", body)
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(got), "server_busy") {
		t.Fatalf("B beside A: %d %v %s", resp.StatusCode, resp.Header, got)
	}
	if n := metricValue(t, f.gw, "llmctl_request_bodies_refused_total"); n != 1 {
		t.Fatalf("refused counter %v, want 1", n)
	}

	// A completes and is served; then B fits.
	if _, err := io.WriteString(a, body[10:]); err != nil {
		t.Fatal(err)
	}
	ra, err := http.ReadResponse(bufio.NewReader(a), nil)
	if err != nil || ra.StatusCode != 200 {
		t.Fatalf("A: %v %v", ra, err)
	}
	ra.Body.Close()
	waitFor(t, func() bool { return metricValue(t, f.gw, "llmctl_request_body_bytes_buffered") == 0 })
	if resp := f.post(t, "/v1/chat/completions", "good", body); resp.StatusCode != 200 {
		t.Fatalf("B alone: %d", resp.StatusCode)
	}
}

// TestHugeMaxTokensCannotBypassTPM: max_tokens at the top of int64 used to
// wrap the admitted token count to a small number and pass a TPM limit of
// 100. Now it is refused before admission, naming the field, and anything
// up to the ceiling meets the limiter whole.
func TestHugeMaxTokensCannotBypassTPM(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	lim, err := limits.NewMemory(limits.Config{Key: billing.Limits{TPM: 100}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lim.Close() })
	f := newFixture(t, func(o *serve.Options) { o.Admitter = lim }, d)
	for _, c := range []struct {
		field  string
		n      string
		status int
		param  string
	}{
		// Above the TPM limit: never admissible, so a 400 (not a 429 to
		// retry) that still comes from the limiter, naming max_tokens.
		{"max_tokens", "1000", 400, "max_tokens"},
		{"max_tokens", "16777216", 400, "max_tokens"},
		{"max_tokens", "16777217", 400, "max_tokens"},
		{"max_tokens", "9223372036854775807", 400, "max_tokens"},
		{"max_completion_tokens", "9223372036854775807", 400, "max_completion_tokens"},
		{"max_tokens", "10", 200, ""},
	} {
		body := fmt.Sprintf(`{"model":"double-model","messages":[{"role":"user","content":"hi"}],%q:%s}`, c.field, c.n)
		resp := f.post(t, "/v1/chat/completions", "good", body)
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != c.status {
			t.Fatalf("%s=%s: %d %s, want %d", c.field, c.n, resp.StatusCode, got, c.status)
		}
		if c.param != "" {
			var e struct{ Error struct{ Param string } }
			if json.Unmarshal(got, &e) != nil || e.Error.Param != c.param || resp.Header.Get("Retry-After") != "" {
				t.Fatalf("%s=%s: %s (Retry-After %q)", c.field, c.n, got, resp.Header.Get("Retry-After"))
			}
		}
	}
}

// blockingReserver blocks every reservation until its context ends, like a
// commit still in flight when the client leaves.
type blockingReserver struct{ entered chan struct{} }

func (b blockingReserver) Reserve(ctx context.Context, _ billing.ReserveRequest) (billing.Hold, error) {
	b.entered <- struct{}{}
	<-ctx.Done()
	return nil, fmt.Errorf("reserve: %w", ctx.Err())
}

// TestClientAbortDuringReserveIsNotAnError: a client that leaves while its
// hold is being written is a 499 in the metrics and not an ERROR in the log
// (it used to be logged at ERROR and counted as a 503 ledger_unavailable).
func TestClientAbortDuringReserveIsNotAnError(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	var logs testenv.Buffer
	br := blockingReserver{entered: make(chan struct{})}
	f := newFixture(t, func(o *serve.Options) {
		o.Reserver = br
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	}, d)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL+"/v1/chat/completions", strings.NewReader(chatBody(false, "x")))
		req.Header.Set("Authorization", "Bearer good")
		if resp, err := f.srv.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-br.entered
	cancel()
	wg.Wait()
	waitFor(t, func() bool { return counterWith(t, f.gw, "llmctl_requests_total", "code", "499") == 1 })
	if n := counterWith(t, f.gw, "llmctl_requests_total", "code", "503"); n != 0 {
		t.Fatalf("a client abort counted as %v 503s", n)
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Fatalf("a client abort logged at ERROR:\n%s", logs.String())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metricValue sums every series of the named gauge or counter.
func metricValue(t *testing.T, gw *serve.Gateway, name string) float64 {
	return counterWith(t, gw, name, "", "")
}

// counterWith sums the series of name whose label has value ("" = all).
func counterWith(t *testing.T, gw *serve.Gateway, name, label, value string) float64 {
	t.Helper()
	mfs, err := gw.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !hasLabel(m, label, value) {
				continue
			}
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name && lp.GetValue() == value {
			return true
		}
	}
	return false
}

// TestAuthErrorsSayWhy: each refused key is a 401 whose message says why.
func TestAuthErrorsSayWhy(t *testing.T) {
	f := newFixture(t, nil)
	for key, want := range map[string]string{
		"":             "missing API key",
		"nope":         "invalid API key",
		"revoked":      "API key revoked",
		"expired":      "API key expired",
		"suspended":    "account is suspended",
		"broken-store": "could not verify",
	} {
		resp := f.post(t, "/v1/chat/completions", key, chatBody(false, "x"))
		body, _ := io.ReadAll(resp.Body)
		code := http.StatusUnauthorized
		if key == "broken-store" {
			code = http.StatusServiceUnavailable
		}
		if resp.StatusCode != code || !strings.Contains(string(body), want) {
			t.Errorf("key %q: %d %s, want %d %q", key, resp.StatusCode, body, code, want)
		}
	}
}
