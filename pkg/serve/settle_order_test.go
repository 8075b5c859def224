package serve_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve"
)

// hookReserver runs onSettle inside Settle, while the gateway waits on it.
type hookReserver struct{ onSettle func(billing.Usage) }

func (h hookReserver) Reserve(context.Context, billing.ReserveRequest) (billing.Hold, error) {
	return holdFunc(h.onSettle), nil
}

// settleOrder sends body over a raw connection and reports what of the
// answer had reached the client's socket while Settle ran, and the whole
// answer. A write the gateway made before Settle is in the client's socket
// buffer by then (loopback delivers within the write), so the read inside
// Settle sees it: no timing decides the outcome, the short deadline only
// ends the look once nothing is there.
func settleOrder(t *testing.T, path, body string) (early, all string) {
	t.Helper()
	return settleOrderOn(t, path, body, nil)
}

// settleOrderOn is settleOrder with more backends (more, when not nil).
func settleOrderOn(t *testing.T, path, body string, more func(*serve.Options)) (early, all string) {
	t.Helper()
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	var conn net.Conn
	var mu sync.Mutex
	var seen bytes.Buffer
	f := newFixture(t, func(o *serve.Options) {
		o.Reserver = hookReserver{onSettle: func(billing.Usage) {
			mu.Lock()
			defer mu.Unlock()
			buf := make([]byte, 64<<10)
			_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			for {
				n, err := conn.Read(buf)
				seen.Write(buf[:n])
				if err != nil {
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Errorf("reading inside Settle: %v", err)
					}
					return
				}
			}
		}}
		if more != nil {
			more(o)
		}
	}, d)
	var err error
	conn, err = net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST "+path+" HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer good\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	// Wait for the request to finish: the ticket's Done runs after Settle.
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(10 * time.Millisecond)
		f.rec.mu.Lock()
		done := len(f.rec.done) > 0
		f.rec.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the request never finished")
		}
	}
	mu.Lock()
	early = seen.String()
	mu.Unlock()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(early), conn)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rest, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	return early, string(rest)
}

// A non-stream answer is settled (journaled, with the ledger) before any
// byte of it is sent: a client holding an answer means a durable charge.
func TestPlainAnswerSentOnlyAfterSettle(t *testing.T) {
	early, all := settleOrder(t, "/v1/chat/completions", chatBody(false, "hello there tokens=5"))
	if early != "" {
		t.Fatalf("the client had %d bytes of the answer before Settle ran: %q", len(early), early)
	}
	if !strings.Contains(all, `"completion_tokens"`) {
		t.Fatalf("incomplete answer: %q", all)
	}
}

// A stream's events go out as they come (they are the product), but its
// end — [DONE] and the end of the body — only after Settle.
func TestStreamEndsOnlyAfterSettle(t *testing.T) {
	early, all := settleOrder(t, "/v1/chat/completions", chatBody(true, "hello there tokens=5"))
	if !strings.Contains(early, "data: {") {
		t.Fatalf("no event reached the client before Settle: %q", early)
	}
	if strings.Contains(early, "[DONE]") {
		t.Fatalf("[DONE] reached the client before Settle: %q", early)
	}
	if !strings.Contains(all, "data: [DONE]") {
		t.Fatalf("the stream did not end with [DONE]: %q", all)
	}
}

// On a translated protocol too: a plain answer only after Settle, and a
// stream's last event (a whole response object, larger than the
// connection's buffer here) only after Settle.
func TestProtocolAnswersEndOnlyAfterSettle(t *testing.T) {
	early, all := settleOrder(t, "/v1/responses", `{"model":"double-model","input":"hello tokens=5"}`)
	if early != "" || !strings.Contains(all, `"output_tokens":5`) {
		t.Fatalf("plain: early %q, answer %q", early, all)
	}
	early, all = settleOrder(t, "/v1/responses", `{"model":"double-model","input":"hello tokens=3000","stream":true}`)
	if !strings.Contains(early, "response.output_text.delta") || strings.Contains(early, "response.completed") {
		t.Fatalf("stream: before Settle the client had %d bytes, ending %q", len(early), early[max(0, len(early)-200):])
	}
	if !strings.Contains(all, "event: response.completed") {
		t.Fatalf("the stream did not end with response.completed")
	}
}

// Passed through natively too: a plain answer only after Settle, and a
// stream's last event only after Settle.
func TestNativeAnswersEndOnlyAfterSettle(t *testing.T) {
	nd := startNativeDouble(t)
	native := func(o *serve.Options) {
		o.Remotes = append(o.Remotes, serve.RemoteConfig{Name: "native", URL: nd.srv.URL, Protocols: []string{"responses", "messages"}})
	}
	early, all := settleOrderOn(t, "/v1/messages", nativeMessagesBody("native-model", false, "hi"), native)
	if early != "" || all != nativeMessage {
		t.Fatalf("plain: early %q, answer %q", early, all)
	}
	early, all = settleOrderOn(t, "/v1/responses", responsesBody("native-model", true, "hi"), native)
	if !strings.Contains(early, "response.output_text.delta") || strings.Contains(early, "response.completed") {
		t.Fatalf("stream: before Settle the client had %q", early)
	}
	if !strings.Contains(all, "event: response.completed") {
		t.Fatalf("the stream did not end with response.completed: %q", all)
	}
}
