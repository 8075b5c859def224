package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestServeBatchLimitsFromConfig: the config file's batch limits reach the
// built `llmctl serve`: an upload above batch.maxFileBytes is refused with
// 413 file_too_large naming the limit, and a file with more lines than
// batch.maxLines fails at validating, naming the line and the limit,
// before anything runs.
func TestServeBatchLimitsFromConfig(t *testing.T) {
	ctx := context.Background()
	dir, dsn, st, _ := sqliteWithAdmin(t)
	userKey := tenantWithKey(t, st, "acme")
	st.Close()
	cfg := filepath.Join(dir, "llmctl.yaml")
	if err := os.WriteFile(cfg, []byte("batch:\n  maxFileBytes: 2048\n  maxLines: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, double, logs := startPricedServe(t, buildLLMCtl(t), dir, dsn, "--config", cfg)
	c := openai.NewClient(option.WithBaseURL(g.url+"/v1/"), option.WithAPIKey(userKey), option.WithMaxRetries(0))

	line := func(id string) string {
		return `{"custom_id":"` + id + `","method":"POST","url":"/v1/chat/completions","body":{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}}` + "\n"
	}
	_, err := c.Files.New(ctx, openai.FileNewParams{Purpose: openai.FilePurposeBatch,
		File: openai.File(strings.NewReader(strings.Repeat(line("x"), 20)), "big.jsonl", "application/jsonl")})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusRequestEntityTooLarge || apiErr.Code != "file_too_large" ||
		!strings.Contains(apiErr.Message, "2048 bytes") {
		t.Fatalf("upload above batch.maxFileBytes: %v\n%s", err, logs)
	}

	f, err := c.Files.New(ctx, openai.FileNewParams{Purpose: openai.FilePurposeBatch,
		File: openai.File(strings.NewReader(line("a")+line("b")+line("c")), "three.jsonl", "application/jsonl")})
	if err != nil {
		t.Fatalf("upload: %v\n%s", err, logs)
	}
	b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID,
		Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for b.Status != openai.BatchStatusFailed {
		if time.Now().After(deadline) || b.Status == openai.BatchStatusCompleted {
			t.Fatalf("batch %s is %s, want failed at validating\n%s", b.ID, b.Status, logs)
		}
		time.Sleep(200 * time.Millisecond)
		if b, err = c.Batches.Get(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.Errors.Data) != 1 || b.Errors.Data[0].Code != "too_many_requests" || b.Errors.Data[0].Line != 3 ||
		!strings.Contains(b.Errors.Data[0].Message, "more than 2 lines") {
		t.Fatalf("errors %+v", b.Errors.Data)
	}
	if n := double.Requests(); n != 0 {
		t.Fatalf("the backend got %d requests from a batch that failed validation", n)
	}
}
