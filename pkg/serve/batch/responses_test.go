package batch_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// TestBatchResponsesEndpoint: a batch of /v1/responses lines through
// openai-go: each answer in the output file is a Responses object (the
// line translated to chat and back, as the /v1/responses route does), a
// refused line is in the error file in the Responses error shape, and
// every answered line is charged once at the batch price.
func TestBatchResponsesEndpoint(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"SQLite": sqliteDSN, "PostgreSQL": pgDSN} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, dsn(t), batch.Limits{})
			defer e.startWorker()()
			c := e.client(e.keyA)
			line := func(id, input string) string {
				b, _ := json.Marshal(map[string]any{"custom_id": id, "method": "POST", "url": "/v1/responses",
					"body": map[string]any{"model": "double-model", "input": input, "max_output_tokens": 20}})
				return string(b)
			}
			f := upload(t, c, strings.Join([]string{line("r1", "hello tokens=3"), line("r2", "no status=400"), line("r3", "world tokens=5")}, "\n"))
			b, err := c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: f.ID,
				Endpoint: openai.BatchNewParamsEndpointV1Responses, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
			if err != nil {
				t.Fatal(err)
			}
			b = poll(t, c, b.ID)
			if b.Status != openai.BatchStatusCompleted || b.RequestCounts.Completed != 2 || b.RequestCounts.Failed != 1 {
				t.Fatalf("finished %s %+v %+v", b.Status, b.RequestCounts, b.Errors)
			}
			out := download(t, c, b.OutputFileID)
			if len(out) != 2 || out[0].CustomID != "r1" || out[1].CustomID != "r3" {
				t.Fatalf("output %+v", out)
			}
			for _, l := range out {
				var r responses.Response
				if l.Response == nil || l.Response.StatusCode != 200 || json.Unmarshal(l.Response.Body, &r) != nil ||
					r.Object != "response" || r.Status != responses.ResponseStatusCompleted || r.OutputText() == "" || r.Usage.OutputTokens == 0 {
					t.Fatalf("output line %+v", l)
				}
			}
			if errs := download(t, c, b.ErrorFileID); len(errs) != 1 || errs[0].CustomID != "r2" || errs[0].Response == nil || errs[0].Response.StatusCode != 400 {
				t.Fatalf("error file %+v", errs)
			}
			d := e.debits(t)
			if len(d) != 2 {
				t.Fatalf("%d debits, want 2", len(d))
			}
			for _, x := range d {
				tokens := x.PromptTokens + x.CompletionTokens
				if want := -((tokens*500_000+999_999)/1_000_000 + 10); !strings.Contains(x.Key, b.ID) || tokens == 0 || int64(x.Amount) != want {
					t.Fatalf("debit %+v, want %d at the batch price", x, want)
				}
			}
		})
	}
}
