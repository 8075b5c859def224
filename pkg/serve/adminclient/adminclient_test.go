package adminclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const testKey = "sk-llm-abc123.secretsecretsecret"

// TestErrorMapping: OpenAI-shaped answers become *Error with the server's
// status, code, param and message, printed in the user's terms, and the
// key never shows up in an error.
func TestErrorMapping(t *testing.T) {
	var gotAuth, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath = r.Header.Get("Authorization"), r.URL.Path
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/admin/v1/tenants/nope":
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"error":{"message":"tenant \"nope\" not found","type":"not_found_error","param":null,"code":"not_found"}}`)
		case "/admin/v1/tenants":
			w.WriteHeader(403)
			_, _ = io.WriteString(w, `{"error":{"message":"this API key may not use the admin API; use an admin key","type":"permission_error","param":null,"code":"permission_denied"}}`)
		case "/admin/v1/tenants/acme/credits":
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"error":{"message":"\"amount\" must not be zero","type":"invalid_request_error","param":"amount","code":"invalid_request"}}`)
		default: // not llmctl: a proxy's HTML page
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			_, _ = io.WriteString(w, "<html>bad gateway</html>")
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL+"/", testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	_, err = c.GetTenant(ctx, "nope")
	var e *Error
	if !errors.As(err, &e) || e.Status != 404 || e.Code != "not_found" || e.Type != "not_found_error" {
		t.Fatalf("404: %#v", err)
	}
	if got, want := err.Error(), `tenant "nope" not found (404)`; got != want {
		t.Errorf("404 message %q, want %q", got, want)
	}
	if gotAuth != "Bearer "+testKey || gotPath != "/admin/v1/tenants/nope" {
		t.Errorf("request: auth %q path %q", gotAuth, gotPath)
	}

	_, err = c.ListTenants(ctx)
	if !IsStatus(err, 403) || err.Error() != "this API key may not use the admin API; use an admin key (403)" {
		t.Errorf("403: %v", err)
	}

	_, _, err = c.Credit(ctx, "acme", "0", "r", "")
	if !errors.As(err, &e) || e.Param != "amount" || e.Code != "invalid_request" || e.Status != 400 {
		t.Errorf("400: %#v", err)
	}

	_, err = c.Me(ctx)
	if !IsStatus(err, 502) || !strings.Contains(err.Error(), "502") || strings.Contains(err.Error(), "<html>") ||
		strings.Contains(err.Error(), "secret") {
		t.Errorf("non-llmctl answer: %v", err)
	}
}

// TestUnreachable: a server that is not there is a clear error naming it,
// never the key.
func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	c, err := New(url, testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListTenants(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot reach the llmctl server at "+url) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("unreachable: %v", err)
	}
}

// TestTimeoutAndContext: the default client has a 10 s timeout, and a
// cancelled context stops a call.
func TestTimeoutAndContext(t *testing.T) {
	c, err := New("http://127.0.0.1:1", testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.hc.Timeout != 10*time.Second {
		t.Errorf("default timeout %s", c.hc.Timeout)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer srv.Close()
	c, _ = New(srv.URL, testKey, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Me(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestNewRefusesBadInput(t *testing.T) {
	for _, s := range []string{"", "llm.example.com", "ftp://x", "http://"} {
		if _, err := New(s, testKey, nil); err == nil || !strings.Contains(err.Error(), "want a URL") {
			t.Errorf("New(%q): %v", s, err)
		}
	}
	if _, err := New("http://x", " ", nil); err == nil {
		t.Error("empty key accepted")
	}
}

// TestCreditReplay: 201 is a new entry, 200 a replay of the same key.
func TestCreditReplay(t *testing.T) {
	status := 201
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"object":"ledger_entry","tenant":"acme","kind":"credit","amount":"1.000000","amount_micros":1000000,"idempotency_key":"k","created_at":"2026-12-07T00:00:00Z"}`)
	}))
	defer srv.Close()
	c, _ := New(srv.URL, testKey, nil)
	e, replayed, err := c.Credit(context.Background(), "acme", "1", "r", "k")
	if err != nil || replayed || e.AmountMicros != 1_000_000 || e.IdempotencyKey != "k" {
		t.Fatalf("new credit: %+v %v %v", e, replayed, err)
	}
	status = 200
	if _, replayed, err = c.Credit(context.Background(), "acme", "1", "r", "k"); err != nil || !replayed {
		t.Fatalf("replay: %v %v", replayed, err)
	}
}
