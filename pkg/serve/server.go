package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ServerOptions say where and how the gateway listens.
type ServerOptions struct {
	Listen      string // public API, e.g. 127.0.0.1:8080
	AdminListen string // /metrics; "" disables the admin listener
	// ShutdownGrace is how long in-flight requests (streams included) may
	// drain after ctx ends before connections are cut; default 30s.
	ShutdownGrace time.Duration
	// OnListening, when set, is told the bound addresses (useful with :0).
	OnListening func(api, admin net.Addr)
}

// Serve checks backends once, listens, and serves until ctx ends; then it
// stops accepting, lets in-flight requests drain for the grace period and
// ends what is left with a shutdown error (which cancels their upstream
// requests), then closes the connections.
func (g *Gateway) Serve(ctx context.Context, so ServerOptions) error {
	if so.ShutdownGrace <= 0 {
		so.ShutdownGrace = 30 * time.Second
	}
	var lc net.ListenConfig
	apiLn, err := lc.Listen(ctx, "tcp", so.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", so.Listen, err)
	}
	// No ReadTimeout or WriteTimeout: a stream may run for minutes, and an
	// expiring read deadline would cancel its context. Bodies are bounded
	// by MaxBodyBytes instead.
	servers := []*http.Server{{Handler: g, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}}
	lns := []net.Listener{apiLn}
	var adminAddr net.Addr
	if so.AdminListen != "" {
		adminLn, err := lc.Listen(ctx, "tcp", so.AdminListen)
		if err != nil {
			apiLn.Close()
			return fmt.Errorf("admin listen %s: %w", so.AdminListen, err)
		}
		adminAddr = adminLn.Addr()
		servers = append(servers, &http.Server{Handler: g.AdminHandler(), ReadHeaderTimeout: 10 * time.Second})
		lns = append(lns, adminLn)
	}

	hctx, stopHealth := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHealth()
	g.CheckBackends(hctx)
	go g.RunHealthChecks(hctx)

	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(lns[i]) }()
	}
	g.log.Info("listening", "api", apiLn.Addr().String(), "admin", fmt.Sprint(adminAddr))
	if so.OnListening != nil {
		so.OnListening(apiLn.Addr(), adminAddr)
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	g.log.Info("shutting down", "grace", so.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), so.ShutdownGrace)
	defer cancel()
	for _, srv := range servers {
		g.shutdown(sctx, srv)
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}
