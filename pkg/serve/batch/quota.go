package batch

// A tenant whose balance runs out mid-batch (docs/billing.md, "A batch that
// runs out of credit"): the line the ledger refused is recorded with the gateway's
// own 402 insufficient_quota answer, and every line of the batch not yet
// started is failed with the same error without being run, so the batch
// completes and nothing more is charged. OpenAI's error file carries a
// failed request as a response whose body is the API error; these lines
// have that shape, code insufficient_quota, so a reader handles both alike.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve/apierror"
)

// quotaRunner is the Service's Runner: next, unless the line's batch ran
// out of credit in this process.
type quotaRunner struct {
	next    Runner
	running func(batchID string) bool // the batch is still worked on here

	mu  sync.Mutex
	out map[string]string // batch id → request id of the refused line
}

func (q *quotaRunner) RunLine(ctx context.Context, p billing.Principal, batchID, endpoint string, body []byte, requestID string) (int, []byte) {
	q.mu.Lock()
	refused, out := q.out[batchID]
	q.mu.Unlock()
	if out {
		e := &apierror.Error{Status: http.StatusPaymentRequired, Type: apierror.TypeQuota, Code: "insufficient_quota",
			Message: fmt.Sprintf("not run: the balance ran out during this batch (request %s was refused for insufficient credit); "+
				"nothing was charged for this line; add credit and submit the lines that did not run again", refused)}
		return e.Status, e.Body()
	}
	status, resp := q.next.RunLine(ctx, p, batchID, endpoint, body, requestID)
	if status == http.StatusPaymentRequired && quotaCode(resp) {
		q.mu.Lock()
		// Batches no longer worked on here leave the map (a resumed one
		// finds out again from its first refused line).
		for id := range q.out {
			if !q.running(id) {
				delete(q.out, id)
			}
		}
		if _, ok := q.out[batchID]; !ok {
			q.out[batchID] = requestID
		}
		q.mu.Unlock()
	}
	return status, resp
}

// quotaCode reports whether body is an OpenAI error with code
// insufficient_quota (the ledger's refusal, not a budget's 429).
func quotaCode(body []byte) bool {
	var v struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	return json.Unmarshal(body, &v) == nil && v.Error.Code == "insufficient_quota"
}

// isRunning reports whether this process works on batch id.
func (s *Service) isRunning(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running[id]
}
