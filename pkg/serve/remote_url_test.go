package serve_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/serve"
)

// TestBackendURLWithV1: the OpenAI-style base URL (ending in /v1) and the
// server's root both reach the same /v1/models.
func TestBackendURLWithV1(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	for _, u := range []string{d.URL(), d.URL() + "/", d.URL() + "/v1", d.URL() + "/v1/"} {
		r, err := serve.NewRemote(serve.RemoteConfig{Name: "d", URL: u})
		if err != nil {
			t.Fatal(err)
		}
		ms, err := r.Models(context.Background())
		if err != nil || len(ms) != 1 || ms[0] != "double-model" {
			t.Errorf("%s: models %v, err %v", u, ms, err)
		}
	}
}

// TestBackendNotFoundSaysWhatWasTried: a 404 from the health check names
// the URL that was asked and what the backend URL should look like.
func TestBackendNotFoundSaysWhatWasTried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	r, err := serve.NewRemote(serve.RemoteConfig{Name: "vllm", URL: srv.URL + "/api"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Models(context.Background())
	if err == nil || !strings.Contains(err.Error(), "GET "+srv.URL+"/api/v1/models: status 404") ||
		!strings.Contains(err.Error(), "OpenAI-compatible") {
		t.Fatalf("err = %v", err)
	}
}

// TestRemoteCutBeforeAnswerIsTheBackends: a backend that drops the
// connection before answering is a retryable connect failure of the
// backend's, never read as the client going away (which would stop the
// retry and the fallback: the 502 a fresh-clone CI run once saw).
func TestRemoteCutBeforeAnswerIsTheBackends(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	defer srv.Close()
	r, err := serve.NewRemote(serve.RemoteConfig{Name: "gpu", URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Do(t.Context(), &serve.Request{Endpoint: "chat/completions", Model: "m", Body: []byte(`{"model":"m"}`)})
	be, ok := errors.AsType[*serve.BackendError](err)
	if !ok || be.Reason != serve.ReasonConnect || !errors.Is(err, serve.ErrRetryable) || errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v (%T), want a retryable %s failure of the backend", err, err, serve.ReasonConnect)
	}
}
