package serve

import (
	"context"
	"net/http"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve/protocol/responses"
)

// responsesLine runs a batch line of /v1/responses as the edge runs a
// client's (edge.go): the body is translated into one chat request, run
// on the chat path, and the answer translated back into a Responses object
// for the output file. A backend that serves the Responses protocol itself
// still gets the translation here: a batch line is never passed through.
func (g *Gateway) responsesLine(ctx context.Context, w http.ResponseWriter, r *http.Request, st *reqState, p billing.Principal, batchID string, body []byte) {
	ew := &edgeWriter{w: w, ex: responses.Adapter{}.New("/v1/responses")}
	defer ew.close()
	req, aerr := ew.ex.Decode(body)
	if aerr != nil {
		g.fail(ew, st, aerr)
		return
	}
	if req.CountTokens {
		g.fail(ew, st, badRequest("url", "a batch line cannot count tokens"))
		return
	}
	cr, aerr := decodeRequest(EndpointChat, req.Chat)
	if aerr != nil {
		g.fail(ew, st, aerr)
		return
	}
	if cr.stream {
		g.fail(ew, st, badRequest("stream", "a batch line cannot be streamed; remove stream"))
		return
	}
	cr.batchID, cr.waitCtx = batchID, ctx
	g.run(ew, r, st, p, cr)
}
