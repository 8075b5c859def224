package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/llmctl/llmctl/internal/llmctltest"
	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
)

// twoBackends starts doubles a and b serving the same model behind one gateway.
func twoBackends(t *testing.T, extra ...string) (*llmctltest.Server, *upstreamdouble.Double, *upstreamdouble.Double) {
	a := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	b := upstreamdouble.Start(t, upstreamdouble.Options{Name: "b"})
	args := append([]string{"--backend", "a=" + a.URL(), "--backend", "b=" + b.URL()}, extra...)
	return llmctltest.Start(t, llmctltest.Options{Args: args}), a, b
}

func TestFailover(t *testing.T) {
	ctx := ctxT(t)
	t.Run("connect refused", func(t *testing.T) {
		s, a, b := twoBackends(t)
		c := client(s, s.AdminKey)
		a.Down() // refused connections: retried on b, never seen by the client
		for range 6 {
			if _, err := c.Chat.Completions.New(ctx, chat("hi")); err != nil {
				t.Fatalf("with a down: %v", err)
			}
		}
		if b.Requests() != 6 {
			t.Fatalf("b served %d of 6", b.Requests())
		}
		metrics := get(t, s.AdminURL+"/metrics")
		if !strings.Contains(metrics, `llmctl_upstream_errors_total{backend="a",reason="connect"}`) {
			t.Fatal("a was never tried: no connect error counted")
		}
	})
	for _, status := range []int{503, 429} {
		t.Run(fmt.Sprint("status ", status), func(t *testing.T) {
			s, a, b := twoBackends(t)
			c := client(s, s.AdminKey)
			a.SetFault(upstreamdouble.Fault{Status: status, RetryAfter: "1"})
			for range 6 {
				if _, err := c.Chat.Completions.New(ctx, chat("hi")); err != nil {
					t.Fatalf("with a answering %d: %v", status, err)
				}
			}
			if b.Requests() != 6 || a.Requests() == 0 {
				t.Fatalf("a saw %d, b served %d of 6", a.Requests(), b.Requests())
			}
		})
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	return readAll(resp)
}

// TestNoRetryAfterFirstByte: once a stream has started, a broken upstream
// ends the client's stream with an error; no other backend is tried.
func TestNoRetryAfterFirstByte(t *testing.T) {
	s, a, b := twoBackends(t)
	c := client(s, s.AdminKey)
	st := c.Chat.Completions.NewStreaming(ctxT(t), chat("hi tokens=5 fail-after=2"), reqID("e2e-cut"))
	var got strings.Builder
	for st.Next() {
		if ch := st.Current(); len(ch.Choices) > 0 {
			got.WriteString(ch.Choices[0].Delta.Content)
		}
	}
	if st.Err() == nil {
		t.Fatal("a stream cut upstream ended cleanly for the client")
	}
	if got.String() != "t1 t2 " {
		t.Fatalf("client got %q before the cut", got.String())
	}
	if n := a.Requests() + b.Requests(); n != 1 {
		t.Fatalf("upstream saw %d requests, want exactly 1 (no retry after the first byte)", n)
	}
}

// TestDisconnectCancelsUpstream: the client leaving mid-stream cancels the
// upstream request, and the double delivered exactly what was streamed.
func TestDisconnectCancelsUpstream(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	s := llmctltest.Start(t, llmctltest.Options{Args: []string{"--backend", "a=" + d.URL()}})
	ctx, cancel := context.WithCancel(ctxT(t))
	c := client(s, s.AdminKey)
	st := c.Chat.Completions.NewStreaming(ctx, chat("hi tokens=50 stall-after=3"), reqID("e2e-leave"))
	n := 0
	for n < 3 && st.Next() {
		if ch := st.Current(); len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("got %d tokens before stalling: %v", n, st.Err())
	}
	cancel()
	st.Close()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	rec, err := d.Wait(wctx, "e2e-leave", func(r upstreamdouble.Record) bool { return r.Canceled })
	if err != nil {
		t.Fatal(err)
	}
	if rec.CompletionTokens != 3 || rec.Completed {
		t.Fatalf("double record %+v", rec)
	}
}

// TestGracefulShutdownDrainsStreams: SIGTERM mid-stream lets it finish.
func TestGracefulShutdownDrainsStreams(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	s := llmctltest.Start(t, llmctltest.Options{Args: []string{"--backend", "a=" + d.URL()}})
	c := client(s, s.AdminKey)
	st := c.Chat.Completions.NewStreaming(ctxT(t), chat("hi tokens=8 gap=50ms"))
	var got strings.Builder
	signaled := false
	for st.Next() {
		if ch := st.Current(); len(ch.Choices) > 0 {
			got.WriteString(ch.Choices[0].Delta.Content)
		}
		if !signaled {
			if err := s.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			signaled = true
		}
	}
	if err := st.Err(); err != nil {
		t.Fatalf("stream broken by shutdown: %v", err)
	}
	if got.String() != "t1 t2 t3 t4 t5 t6 t7 t8 " {
		t.Fatalf("drained stream %q", got.String())
	}
	select {
	case <-s.Done():
		if err := s.ExitErr(); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.Stderr())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not exit after draining")
	}
}

// TestPostgresStore runs the gateway on PostgreSQL: bootstrap, auth, a call.
func TestPostgresStore(t *testing.T) {
	dsn := testenv.PG(t).NewDatabase(t)
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	s := llmctltest.Start(t, llmctltest.Options{DB: dsn, Args: []string{"--backend", "a=" + d.URL()}})
	if s.AdminKey == "" {
		t.Fatal("no admin key on an empty PostgreSQL store")
	}
	c := client(s, s.AdminKey)
	if _, err := c.Chat.Completions.New(ctxT(t), chat("hi")); err != nil {
		t.Fatal(err)
	}
	// A second replica on the same store prints no key and accepts the same one.
	s2 := llmctltest.Start(t, llmctltest.Options{DB: dsn, Args: []string{"--backend", "a=" + d.URL()}})
	if s2.AdminKey != "" {
		t.Fatal("a second start printed another admin key")
	}
	c2 := client(s2, s.AdminKey)
	if _, err := c2.Chat.Completions.New(ctxT(t), chat("hi")); err != nil {
		t.Fatal(err)
	}
	// A revoke through one store reaches both replicas' key caches.
	id, key := createKey(t, dsn)
	k1, k2 := client(s, key), client(s2, key)
	for _, kc := range []openai.Client{k1, k2} {
		if _, err := kc.Chat.Completions.New(ctxT(t), chat("hi")); err != nil {
			t.Fatal(err) // cached now
		}
	}
	llmctl(t, dsn, "keys", "revoke", id)
	revoked := time.Now()
	for i, kc := range []openai.Client{k1, k2} {
		for {
			_, err := kc.Chat.Completions.New(ctxT(t), chat("hi"))
			if err != nil {
				apiErr(t, err, http.StatusUnauthorized, "invalid_api_key")
				t.Logf("replica %d refuses the revoked key %s after the revoke", i+1, time.Since(revoked))
				break
			}
			if time.Since(revoked) > 10*time.Second {
				t.Fatalf("replica %d still accepts a revoked key after 10s", i+1)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	var ae *openai.Error
	bad := client(s2, "sk-llm-x_y")
	_, err := bad.Chat.Completions.New(ctxT(t), chat("hi"))
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad key on replica: %v", err)
	}
}
