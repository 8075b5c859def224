package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/llmctltest"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
)

// openStream posts a streaming request and returns its body once the first
// event has arrived, with that event.
func openStream(t *testing.T, ctx context.Context, s *llmctltest.Server, key, path, id, body string) (*bufio.Reader, io.Closer, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return br, resp.Body, first
}

// TestShutdownEndsOpenStreams: when the grace period ends, open streams get
// their protocol's error event (not a silent cut), the access log records
// them as 503 (not 499), they are charged what was delivered, and the last
// log line says the gateway stopped.
func TestShutdownEndsOpenStreams(t *testing.T) {
	s, _, db, key := pricedServer(t, "LLMCTL_SHUTDOWN_GRACE=700ms")
	ctx := ctxT(t)
	// A plain request waiting on its backend, sent first so that it is in
	// flight by the time both streams have their first event.
	plain := make(chan string, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi delay=30s"}]}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("X-Request-Id", "shut-plain")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			plain <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		plain <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	oai, oaiBody, oaiFirst := openStream(t, ctx, s, key, "/v1/chat/completions", "shut-openai",
		`{"model":"`+model+`","stream":true,"messages":[{"role":"user","content":"hi tokens=100 gap=150ms"}]}`)
	defer oaiBody.Close()
	ant, antBody, antFirst := openStream(t, ctx, s, key, "/v1/messages", "shut-anthropic",
		`{"model":"`+model+`","max_tokens":500,"stream":true,"messages":[{"role":"user","content":"hi tokens=100 gap=150ms"}]}`)
	defer antBody.Close()
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	rest, err := io.ReadAll(oai)
	if err != nil {
		t.Fatalf("OpenAI stream cut without an end: %v\n%s", err, rest)
	}
	events := strings.Split(strings.TrimSpace(string(rest)), "\n\n")
	last := events[len(events)-1]
	if !strings.HasPrefix(last, `data: {"error":{`) || !strings.Contains(last, `"code":"server_shutdown"`) || strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("OpenAI stream's last event %q", last)
	}
	delivered := map[string]int64{"shut-openai": int64(strings.Count(oaiFirst+string(rest), `"delta":{"content":"t`))}
	rest, err = io.ReadAll(ant)
	if err != nil {
		t.Fatalf("Anthropic stream cut without an end: %v\n%s", err, rest)
	}
	if !strings.Contains(string(rest), "event: error\ndata: {\"type\":\"error\"") || !strings.Contains(string(rest), "shutting down") {
		t.Fatalf("Anthropic stream's end:\n%s", rest)
	}
	delivered["shut-anthropic"] = int64(strings.Count(antFirst+string(rest), "event: content_block_delta"))
	if got := <-plain; !strings.HasPrefix(got, "503 ") || !strings.Contains(got, `"code":"server_shutdown"`) {
		t.Errorf("plain request at the grace's end: %s", got)
	}

	select {
	case <-s.Done():
		if err := s.ExitErr(); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.Stderr())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not exit after the grace period")
	}
	logs := s.Stderr()
	for _, id := range []string{"shut-openai", "shut-anthropic", "shut-plain"} {
		line := logLine(logs, "msg=request request_id="+id)
		if !strings.Contains(line, "status=503") || (id != "shut-plain" && strings.Contains(line, "completion_tokens=0 ")) {
			t.Errorf("access log of a stream ended by shutdown: %q", line)
		}
	}
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if !strings.Contains(lines[len(lines)-1], "msg=stopped") {
		t.Errorf("last log line %q, want msg=stopped", lines[len(lines)-1])
	}
	// Charged what was delivered, settled before the flush that ended the run.
	got := charges(t, db, "acme")
	for id, n := range delivered {
		if n == 0 || got[id].CompletionTokens != n {
			t.Errorf("%s: delivered %d tokens, charged %+v", id, n, got[id])
		}
	}
}

// TestSecondSignalForcesExit: a second SIGTERM during the grace period
// exits at once, non-zero, saying so.
func TestSecondSignalForcesExit(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	s := llmctltest.Start(t, llmctltest.Options{Args: []string{"--backend", "a=" + d.URL()},
		Env: []string{"LLMCTL_SHUTDOWN_GRACE=60s"}})
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	_, body, _ := openStream(t, ctx, s, s.AdminKey, "/v1/chat/completions", "slow",
		`{"model":"`+model+`","stream":true,"messages":[{"role":"user","content":"hi tokens=100 gap=1s"}]}`)
	defer body.Close()
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The first signal is being honoured (draining) before the second.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.Stderr(), "shutting down") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("still draining 5s after a second SIGTERM\n%s", s.Stderr())
	}
	var ee *exec.ExitError
	if err := s.ExitErr(); !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit status %v, want %d", err, 128+int(syscall.SIGTERM))
	}
	if !strings.Contains(s.Stderr(), "forced exit") || strings.Contains(s.Stderr(), "msg=stopped") {
		t.Fatalf("stderr after a forced exit:\n%s", s.Stderr())
	}
	t.Logf("exited %s after the second signal", time.Since(start))
}

// pricedServer starts a gateway with billing on over a double serving
// model, and tenant acme with 10 of credit; it returns the gateway, the
// double, the gateway's database and a key of acme.
func pricedServer(t *testing.T, env ...string) (*llmctltest.Server, *upstreamdouble.Double, string, string) {
	t.Helper()
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a", Models: []string{model}})
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "llmctl.db")
	prices := filepath.Join(dir, "prices.yaml")
	if err := os.WriteFile(prices, []byte("models:\n  "+model+": {input: 100000, output: 300000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := llmctltest.Start(t, llmctltest.Options{DB: db, Args: []string{"--backend", "a=" + d.URL(), "--prices", prices}, Env: env})
	llmctl(t, db, "tenants", "create", "acme")
	llmctl(t, db, "ledger", "credit", "acme", "10", "--reason", "e2e")
	_, key := llmctltest.CreateKey(t, db, "acme")
	return s, d, db, key
}

// logLine is the first line of logs containing sub, or "".
func logLine(logs, sub string) string {
	for line := range strings.SplitSeq(logs, "\n") {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}
