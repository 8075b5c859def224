package engine

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
)

// TestOpenFile serves a model from a GGUF file on disk (the --model path)
// and refuses a file that is not one.
func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tiny.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteDemo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := Open(path, Options{Threads: 1, Context: 128, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "engine:tiny" {
		t.Errorf("name %q", b.Name())
	}
	resp, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointCompletions,
		Body: []byte(`{"prompt":"the sea","max_tokens":4,"temperature":0}`)})
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Choices []struct{ Text string } `json:"choices"`
	}
	if err := json.Unmarshal(resp.Body, &a); err != nil || len(a.Choices) != 1 || a.Choices[0].Text == "" {
		t.Fatalf("answer %s (%v)", resp.Body, err)
	}
	// a prompt longer than the 128-token context is refused up front
	long := `{"prompt":"` + strings.Repeat("sea ", 200) + `"}`
	_, err = b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointCompletions, Body: []byte(long)})
	var re *RequestError
	if !errors.As(err, &re) || re.Status != 400 {
		t.Fatalf("long prompt: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// after Close, requests fail as retryable instead of hanging
	if _, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointCompletions,
		Body: []byte(`{"prompt":"x","max_tokens":1}`)}); !errors.Is(err, serve.ErrRetryable) {
		t.Fatalf("after Close: %v", err)
	}

	bad := filepath.Join(dir, "bad.gguf")
	if err := os.WriteFile(bad, []byte("GGUF\x03\x00\x00\x00garbage-garbage-garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad, Options{}); !errors.Is(err, gguf.ErrFormat) {
		t.Fatalf("bad file: %v", err)
	}
}
