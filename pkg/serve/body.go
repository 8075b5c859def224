package serve

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// bodyBudget caps the bytes buffered across every request body in flight,
// so many slow or large uploads together cannot push the process past its
// memory limit: a body that would cross it is refused with 503 instead.
type bodyBudget struct {
	mu   sync.Mutex
	used int64
	max  int64
}

func (b *bodyBudget) acquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.max-b.used {
		return false
	}
	b.used += n
	return true
}

func (b *bodyBudget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

func (b *bodyBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// firstBodyChunk is what an undeclared (chunked) body starts with; the
// buffer doubles from there, each step paid for from the budget.
const firstBodyChunk = 4 << 10

// readBody reads a request's body of at most limit bytes under two bounds: the
// per-request read deadline (a body trickling in cannot hold a connection
// and its goroutine for ever) and the gateway-wide byte budget. The
// returned release gives the body's bytes back to the budget; call it once
// the body is no longer needed (the handler defers it).
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, func(), *apiError) {
	var held int64
	release := func() { g.bodies.release(held) }
	if r.ContentLength > limit {
		return nil, release, tooLarge(limit)
	}
	rc := http.NewResponseController(w)
	if g.opts.BodyReadTimeout > 0 {
		// Cleared again once the body is in: the deadline also applies to
		// the server's background read that notices a client going away,
		// and a long stream must not be cut by it.
		if rc.SetReadDeadline(time.Now().Add(g.opts.BodyReadTimeout)) == nil {
			defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
		}
	}
	want := int64(firstBodyChunk)
	if r.ContentLength >= 0 {
		want = r.ContentLength + 1 // +1: room to see EOF without growing
	}
	want = min(want, limit+1)
	if !g.bodies.acquire(want) {
		return nil, release, g.busy()
	}
	held = want
	buf := make([]byte, 0, want)
	src := http.MaxBytesReader(w, r.Body, limit)
	for {
		if len(buf) == cap(buf) {
			next := min(2*int64(cap(buf)), limit+1)
			if !g.bodies.acquire(next - held) {
				return nil, release, g.busy()
			}
			held = next
			nb := make([]byte, len(buf), next)
			copy(nb, buf)
			buf = nb
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, release, nil
		}
		if err != nil {
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &mbe):
				return nil, release, tooLarge(mbe.Limit)
			case errors.Is(err, os.ErrDeadlineExceeded):
				return nil, release, &apiError{Status: http.StatusRequestTimeout, Type: typeInvalidRequest, Code: "request_timeout",
					Message: fmt.Sprintf("the request body did not arrive within %s", g.opts.BodyReadTimeout),
					Header:  http.Header{"Connection": {"close"}}}
			default:
				return nil, release, badRequest("", "could not read the request body: %v", err)
			}
		}
	}
}

func tooLarge(limit int64) *apiError {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Type: typeInvalidRequest,
		Code: "request_too_large", Message: fmt.Sprintf("request body exceeds %d bytes", limit),
		Header: http.Header{"Connection": {"close"}}}
}

func (g *Gateway) busy() *apiError {
	g.metrics.bodyRefused.Inc()
	return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "server_busy",
		Message: "the gateway is receiving too many request bodies at once; try again",
		Header:  http.Header{"Retry-After": {"1"}, "Connection": {"close"}}}
}

// refuseUnread answers a request whose body was not (or not wholly) read.
// The server would otherwise try to drain the rest of the body before it
// reuses the connection, which a slow sender stretches out at will; an
// expired read deadline and Connection: close end the connection instead.
func (g *Gateway) refuseUnread(w http.ResponseWriter, st *reqState, e *apiError) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	w.Header().Set("Connection", "close")
	g.fail(w, st, e)
}
