package serve

// The seam of the Files and Batches API (package batch): its HTTP routes
// behind the gateway's key check, and RunLine, which runs one batch line
// through the same path as a client's request.

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/llmctl/llmctl/pkg/billing"
)

// BatchAPI serves /v1/files and /v1/batches for an authenticated caller
// (batch.Service). The body is unread; the handler sets its own limits.
type BatchAPI interface {
	ServeBatchAPI(w http.ResponseWriter, r *http.Request, p billing.Principal)
}

// isBatchPath reports whether path belongs to the Files and Batches API.
func isBatchPath(path string) bool {
	for _, p := range []string{"/v1/files", "/v1/batches"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// batchAPI checks the key (from the headers, before the body), counts the
// call like the admin API's (model "batch", no tokens) and hands over.
func (g *Gateway) batchAPI(w http.ResponseWriter, r *http.Request, st *reqState) {
	p, aerr := g.authenticate(r, st)
	if aerr != nil {
		g.refuseUnread(w, st, aerr)
		return
	}
	s, aerr := g.admit(w, r, st, p, "batch", 0)
	if aerr != nil {
		g.refuseUnread(w, st, aerr)
		return
	}
	defer s.finish(billing.Usage{})
	g.opts.Batches.ServeBatchAPI(w, r, p)
}

// RunLine runs one line of batch batchID (charged at the batch price), body for endpoint (/v1/chat/completions,
// /v1/completions, /v1/embeddings, /v1/responses: batchresponses.go), as principal p: the same decode, model
// check, admission, ledger reservation, routing and settlement as a
// client's request (the seam /v1/responses uses, run), with the access log
// and metrics. requestID is the line's (the ledger's key). It returns the
// status and body the client would have received; streaming is refused by
// the batch validator, so the answer is always a whole JSON body.
//
// The line waits for a backend slot in the queue's batch tier
// (batchqueue.go) for as long as ctx allows; once it has a slot it runs to
// its end whatever ctx does. When ctx ends while it waits, the line did
// not run and RunLine answers 499 client_closed_request.
func (g *Gateway) RunLine(ctx context.Context, p billing.Principal, batchID, endpoint string, body []byte, requestID string) (int, []byte) {
	r, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, endpoint, http.NoBody)
	if err != nil {
		e := badRequest("url", "invalid url %q", endpoint)
		return e.Status, e.Body()
	}
	r.Header.Set("X-Request-Id", requestID)
	rec := &lineRecorder{header: http.Header{}}
	g.serve(rec, r, func(w http.ResponseWriter, r *http.Request, st *reqState) {
		st.tenant, st.keyID = p.TenantID, p.KeyID
		var ep Endpoint
		switch endpoint {
		case "/v1/chat/completions":
			ep = EndpointChat
		case "/v1/completions":
			ep = EndpointCompletions
		case "/v1/embeddings":
			ep = EndpointEmbeddings
		case "/v1/responses":
			g.responsesLine(ctx, w, r, st, p, batchID, body)
			return
		default:
			g.fail(w, st, badRequest("url", "a batch line cannot call %s", endpoint))
			return
		}
		cr, aerr := decodeRequest(ep, body)
		if aerr != nil {
			g.fail(w, st, aerr)
			return
		}
		cr.batchID, cr.waitCtx = batchID, ctx
		if cr.stream {
			g.fail(w, st, badRequest("stream", "a batch line cannot be streamed; remove stream"))
			return
		}
		g.run(w, r, st, p, cr)
	})
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.status, rec.body.Bytes()
}

// lineRecorder is the ResponseWriter of a batch line: the answer is kept
// for the output file. Flush is a no-op (the plain path flushes).
type lineRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (l *lineRecorder) Header() http.Header { return l.header }

func (l *lineRecorder) WriteHeader(code int) {
	if l.status == 0 {
		l.status = code
	}
}

func (l *lineRecorder) Write(b []byte) (int, error) {
	if l.status == 0 {
		l.status = http.StatusOK
	}
	return l.body.Write(b)
}

func (l *lineRecorder) Flush() {}
