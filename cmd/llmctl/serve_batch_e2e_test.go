package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestServeBatchE2E runs the built `llmctl serve` on SQLite with prices: the
// official client uploads a JSONL file and creates a batch, the worker in
// serve runs both lines through the gateway, the output file holds each
// custom_id once, and the tenant is charged each line at the batch price
// (half the interactive one) to the micro-unit.
func TestServeBatchE2E(t *testing.T) {
	ctx := context.Background()
	dir, dsn, st, adminKey := sqliteWithAdmin(t)
	userKey := tenantWithKey(t, st, "acme")
	st.Close()
	g, _, logs := startPricedServe(t, buildLLMCtl(t), dir, dsn)

	credit, _ := http.NewRequest("POST", g.url+"/admin/v1/tenants/acme/credits",
		strings.NewReader(`{"amount":"1","reason":"batch e2e","idempotency_key":"batch-e2e-1"}`))
	credit.Header.Set("Authorization", "Bearer "+adminKey)
	if resp, err := http.DefaultClient.Do(credit); err != nil || resp.StatusCode != 201 {
		t.Fatalf("credit: %v %v", resp, err)
	}

	c := openai.NewClient(option.WithBaseURL(g.url+"/v1/"), option.WithAPIKey(userKey), option.WithMaxRetries(0))
	input := `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","max_tokens":20,"messages":[{"role":"user","content":"one tokens=5"}]}}
{"custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{"model":"m","max_tokens":20,"messages":[{"role":"user","content":"two three tokens=9"}]}}
`
	f, err := c.Files.New(ctx, openai.FileNewParams{Purpose: openai.FilePurposeBatch,
		File: openai.File(strings.NewReader(input), "input.jsonl", "application/jsonl")})
	if err != nil {
		t.Fatalf("upload: %v\n%s", err, logs)
	}
	b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID,
		Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for b.Status != openai.BatchStatusCompleted {
		if time.Now().After(deadline) || b.Status == openai.BatchStatusFailed {
			t.Fatalf("batch %s is %s\n%s", b.ID, b.Status, logs)
		}
		time.Sleep(200 * time.Millisecond)
		if b, err = c.Batches.Get(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
	}
	if b.RequestCounts.Completed != 2 || b.RequestCounts.Failed != 0 {
		t.Fatalf("request counts %+v", b.RequestCounts)
	}
	resp, err := c.Files.Content(ctx, b.OutputFileID)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	seen := map[string]int{}
	var want int64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var line struct {
			CustomID string `json:"custom_id"`
			Response struct {
				StatusCode int `json:"status_code"`
				Body       struct {
					Usage struct {
						PromptTokens     int64 `json:"prompt_tokens"`
						CompletionTokens int64 `json:"completion_tokens"`
					} `json:"usage"`
				} `json:"body"`
			} `json:"response"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line.Response.StatusCode != 200 {
			t.Fatalf("output line %s: %v", sc.Bytes(), err)
		}
		seen[line.CustomID]++
		u := line.Response.Body.Usage
		// The batch price is half the interactive one (50,000 and 150,000
		// micro-units per million tokens), rounded up per request.
		want += (u.PromptTokens*50_000 + u.CompletionTokens*150_000 + 999_999) / 1_000_000
	}
	if seen["a"] != 1 || seen["b"] != 1 || len(seen) != 2 {
		t.Fatalf("output custom_ids %v:\n%s", seen, out)
	}

	// The charges reach the database through the spool's writer, shortly.
	var spent int64
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest("GET", g.url+"/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+userKey)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var me struct {
			Billing struct {
				Spend24h struct {
					AmountMicros int64 `json:"amount_micros"`
					Requests     int64
				} `json:"spend_24h"`
			}
		}
		err = json.NewDecoder(r.Body).Decode(&me)
		r.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if spent = me.Billing.Spend24h.AmountMicros; me.Billing.Spend24h.Requests == 2 {
			break
		}
	}
	if spent != want {
		t.Fatalf("charged %d µ for the batch, want %d µ (batch price)\n%s", spent, want, logs)
	}
}
