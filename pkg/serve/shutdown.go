package serve

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// errServerShutdown is the cause a request's context is cancelled with when
// the shutdown grace period ends, so the handler can tell "the gateway is
// stopping" from "the client left" (503, not 499).
var errServerShutdown = errors.New("the server is shutting down")

// cutGrace is how long requests cut at the end of the grace period get to
// write their error event and settle before connections are closed.
const cutGrace = 2 * time.Second

// withShutdown gives r a context that ends, with cause errServerShutdown,
// when the gateway cuts open requests; stop releases it.
func (g *Gateway) withShutdown(r *http.Request) (*http.Request, func()) {
	ctx, cancel := context.WithCancelCause(r.Context())
	stop := context.AfterFunc(g.cut, func() { cancel(errServerShutdown) })
	return r.WithContext(ctx), func() { stop(); cancel(nil) }
}

// shuttingDown tells whether r's context ended because the gateway cut it.
func shuttingDown(r *http.Request) bool {
	return errors.Is(context.Cause(r.Context()), errServerShutdown)
}

func serverShutdown() *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "server_shutdown",
		Message: "the server is shutting down; try again"}
}

// requestEnded is the answer to a request whose context ended early: the
// gateway stopping it, or its client leaving.
func requestEnded(r *http.Request) *apiError {
	if shuttingDown(r) {
		return serverShutdown()
	}
	return clientClosed()
}

// shutdown stops srv: it drains for the grace period of ctx, then ends the
// requests still open (streams get their protocol's error event, the
// access log says 503, settlement charges what was delivered) and gives
// them cutGrace to finish before closing what is left.
func (g *Gateway) shutdown(ctx context.Context, srv *http.Server) {
	if err := srv.Shutdown(ctx); err == nil {
		return
	}
	g.log.Warn("grace period over; ending open requests")
	g.cutRequests()
	cctx, cancel := context.WithTimeout(context.Background(), cutGrace)
	defer cancel()
	if err := srv.Shutdown(cctx); err != nil {
		g.log.Warn("closing remaining connections", "err", err)
		_ = srv.Close()
	}
}
