package batch_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// TestMeShowsBatchSpend: every line's charge carries its batch id in the
// ledger entry, and /v1/me shows the batches' part of the spend apart from
// the whole, to the micro-unit, on SQLite and PostgreSQL.
func TestMeShowsBatchSpend(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"SQLite": sqliteDSN, "PostgreSQL": pgDSN} {
		t.Run(name, func(t *testing.T) {
			dsn := dsn(t)
			e := newEnv(t, dsn, batch.Limits{})
			e.regateway(t, dsn, func(o *serve.Options) { o.Ledger = e.ls })
			defer e.startWorker()()
			c := e.client(e.keyA)
			ctx := context.Background()
			b := poll(t, c, create(t, c, upload(t, c, chatLine("a", "double-model", "x tokens=3")+"\n"+chatLine("b", "double-model", "y tokens=7")).ID).ID)
			if b.Status != openai.BatchStatusCompleted || b.RequestCounts.Completed != 2 {
				t.Fatalf("batch %s %+v", b.Status, b.RequestCounts)
			}
			if _, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "double-model",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi tokens=2")}}); err != nil {
				t.Fatal(err)
			}
			var all, lines ledger.Micros
			var n int
			for _, d := range e.debits(t) {
				all -= d.Amount
				switch d.BatchID {
				case b.ID:
					lines -= d.Amount
					n++
				case "":
				default:
					t.Fatalf("debit %s carries batch %q", d.Key, d.BatchID)
				}
			}
			if n != 2 || lines == 0 || lines == all {
				t.Fatalf("%d debits carry the batch (%d of %d µ), want the 2 lines'", n, lines, all)
			}
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/me", nil)
			req.Header.Set("Authorization", "Bearer "+e.keyA)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			type sp struct {
				Amount       string `json:"amount"`
				AmountMicros int64  `json:"amount_micros"`
				Requests     int64  `json:"requests"`
			}
			var me struct {
				Billing struct {
					Spend24h      sp `json:"spend_24h"`
					Spend30d      sp `json:"spend_30d"`
					BatchSpend24h sp `json:"batch_spend_24h"`
					BatchSpend30d sp `json:"batch_spend_30d"`
				} `json:"billing"`
			}
			if err := json.Unmarshal(body, &me); err != nil || resp.StatusCode != 200 {
				t.Fatalf("/v1/me: %d %s", resp.StatusCode, body)
			}
			m := me.Billing
			if m.Spend30d != (sp{all.String(), int64(all), 3}) || m.Spend24h != m.Spend30d ||
				m.BatchSpend30d != (sp{lines.String(), int64(lines), 2}) || m.BatchSpend24h != m.BatchSpend30d {
				t.Fatalf("/v1/me billing %+v, want spend %d µ (3 requests) of which batches %d µ (2 lines)", m, all, lines)
			}
			if !strings.Contains(string(body), `"batch_spend_30d"`) {
				t.Fatalf("/v1/me: %s", body)
			}
		})
	}
}
