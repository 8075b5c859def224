package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve/admin"
	"github.com/llmctl/llmctl/pkg/serve/protocol"
)

// Options configure a Gateway. Auth is required; everything else has a
// working default. With no backend at all the gateway still runs (/readyz
// says 503 and every model is unknown) so a bare `llmctl serve` starts.
type Options struct {
	Logger *slog.Logger

	// Auth turns bearer keys into principals (store.NewAuthenticator).
	Auth Authenticator
	// Admitter applies rate limits; nil admits everything.
	Admitter Admitter
	// Reserver holds the ledger's maximum cost; nil logs usage with slog.
	Reserver Reserver
	// Ready reports whether the store is reachable, for /readyz; nil = always.
	Ready func(ctx context.Context) error

	// Remotes are OpenAI-compatible HTTP backends.
	Remotes []RemoteConfig
	// Backends are extra backends (the embedded engine): weight 1, models
	// discovered through Backend.Models, and as many concurrent requests
	// as a Slotted backend's Slots (the rest wait in the admission queue),
	// else no cap.
	Backends []Backend
	// Aliases map a client-facing model name to a backend model name.
	Aliases map[string]string

	// MaxBodyBytes limits a request body (413 above); default 8 MiB.
	MaxBodyBytes int64
	// BodyBudgetBytes caps the bytes buffered across all request bodies in
	// flight (503 server_busy above); default 64 MiB, at least MaxBodyBytes.
	BodyBudgetBytes int64
	// BodyReadTimeout bounds the time to receive one request's body once its
	// headers are in (408 above); default 30s.
	BodyReadTimeout time.Duration
	// MaxTokensCeiling is the largest max_tokens admitted (400 above), so
	// no request's numbers can overflow the limiter's or the ledger's
	// arithmetic; default 2^24 tokens, beyond any model's context today.
	MaxTokensCeiling int64
	// DefaultMaxTokens is admitted and reserved when a request sets no
	// max_tokens; default 4096.
	DefaultMaxTokens int64
	// MaxAttempts bounds backends tried per request; default 3.
	MaxAttempts int
	// Queue configures the admission queue for backends at their
	// maxConcurrency (admission.go, docs/routing.md).
	Queue QueueOptions
	// Fallbacks list, per model, the models that answer in its place when
	// none of its backends can (fallback.go); FallbackOnQueue also falls
	// back when the queue's wait runs out or it is full.
	Fallbacks       map[string][]string
	FallbackOnQueue bool
	// ContextFallbacks list, per model, longer-context models that answer
	// a prompt its backend refuses as too long for its context
	// (contextfallback.go).
	ContextFallbacks map[string][]string

	// Webhooks, when set, is mounted at /v1/billing/webhooks/ without API-key
	// auth or limits, its bodies limited to WebhookMaxBodyBytes (default 1 MiB).
	Webhooks            http.Handler
	WebhookMaxBodyBytes int64

	// HealthInterval is the active health check period (default 5s) and
	// HealthTimeout one check's limit (default 2s).
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	// EjectBase is the first passive ejection, doubled per consecutive
	// failure up to EjectMax (defaults 1s and 30s).
	EjectBase time.Duration
	EjectMax  time.Duration

	// OnNewModels, if set, is called with the backend model names (what
	// requests are priced by; aliases resolve to them) served at start, and
	// again with each model a later discovery adds: serve uses it to name
	// the models billing would refuse.
	OnNewModels func(models []string)

	// Admin, when set, serves the admin API (pkg/serve/admin) under
	// /admin/v1/ behind the gateway's key check: the bearer key must be an
	// admin key (403 permission_denied otherwise), the request is counted by
	// the Admitter like any other, and the caller reaches Admin through
	// admin.WithCaller. AdminAPI says where: AdminAPIOnAPI (the default) on
	// the public listener, AdminAPIOnAdmin on the admin listener (beside
	// /metrics), AdminAPIOff nowhere (404).
	Admin    http.Handler
	AdminAPI string

	// Ledger, when set, gives GET /v1/me the caller's balance and spend;
	// nil (no --prices) answers /v1/me without them, saying why.
	Ledger Accounts
	// Vouchers, when set, serves POST /v1/me/redeem (redeem.go), each key
	// allowed RedeemPerMinute attempts (0: DefaultRedeemPerMinute; < 0: no
	// limit) per process.
	Vouchers        Redeemer
	RedeemPerMinute int

	// Batches, when set, serves the Files and Batches API (/v1/files,
	// /v1/batches; package batch, batchapi.go) behind the key check.
	Batches BatchAPI

	// Protocols are client protocols served by translation to chat
	// completions besides the built-in ones (OpenAI Responses, Anthropic
	// Messages): see package protocol and docs/protocols.md.
	Protocols []protocol.Adapter

	// Registry receives the gateway's metrics and is served on the admin
	// listener; nil creates one (with Go and process collectors). Other
	// components (limits, ledger) register their series on the same one.
	Registry *prometheus.Registry
}

// Accounts is what /v1/me reads from the billing ledger (its ledger.Store).
type Accounts interface {
	Account(ctx context.Context, tenantID string) (ledger.Account, error)
	// Spend is one aggregate over every tenant's window; /v1/me keeps its own.
	Spend(ctx context.Context, w ledger.SpendWindow) ([]ledger.Spend, error)
}

// Where the admin API is served (Options.AdminAPI).
const (
	AdminAPIOnAPI   = "api"
	AdminAPIOnAdmin = "admin"
	AdminAPIOff     = "off"
)

// Gateway is the OpenAI-compatible front door: an http.Handler for the
// public API and one for the admin listener.
type Gateway struct {
	opts    Options
	log     *slog.Logger
	router  *router
	metrics *metrics
	// queueMetrics are the queue's and the fallbacks' series (admission.go).
	queueMetrics *queueMetrics
	registry     *prometheus.Registry
	reserver     Reserver
	webhooks     http.Handler
	bodies       *bodyBudget
	// redeemLimits counts POST /v1/me/redeem attempts per key.
	redeemLimits *redeemLimiter
	// protocols are the translated protocol routes by path (edge.go).
	protocols map[string]protocol.Adapter
	// cut ends, by cutRequests, when the shutdown grace period is over:
	// every open request's context ends with it (shutdown.go).
	cut         context.Context
	cutRequests context.CancelFunc
}

// New validates opts and builds the gateway. Call CheckBackends (or Serve,
// which does) before expecting discovered models.
func New(opts Options) (*Gateway, error) {
	if opts.Auth == nil {
		return nil, errors.New("serve: an Authenticator is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	switch opts.AdminAPI {
	case "":
		opts.AdminAPI = AdminAPIOnAPI
	case AdminAPIOnAPI, AdminAPIOnAdmin, AdminAPIOff:
	default:
		return nil, fmt.Errorf("serve: AdminAPI %q: must be %s, %s or %s", opts.AdminAPI, AdminAPIOnAPI, AdminAPIOnAdmin, AdminAPIOff)
	}
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&opts.MaxBodyBytes, 8<<20)
	def(&opts.DefaultMaxTokens, 4096)
	def(&opts.BodyBudgetBytes, 64<<20)
	opts.BodyBudgetBytes = max(opts.BodyBudgetBytes, opts.MaxBodyBytes+1)
	def(&opts.MaxTokensCeiling, 1<<24)
	def(&opts.WebhookMaxBodyBytes, 1<<20)
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur(&opts.BodyReadTimeout, 30*time.Second)
	defDur(&opts.HealthInterval, 5*time.Second)
	defDur(&opts.HealthTimeout, 2*time.Second)
	defDur(&opts.EjectBase, time.Second)
	defDur(&opts.EjectMax, 30*time.Second)
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 3
	}

	seen := map[string]bool{}
	var members []*member
	add := func(b Backend, weight, maxConc int, models, protocols []string) error {
		if seen[b.Name()] {
			return fmt.Errorf("serve: backend name %q used twice", b.Name())
		}
		seen[b.Name()] = true
		if weight <= 0 {
			weight = 1
		}
		members = append(members, &member{b: b, weight: int64(weight), maxConcurrency: int64(maxConc), staticModels: models, protocols: protocols})
		return nil
	}
	for _, rc := range opts.Remotes {
		rb, err := NewRemote(rc)
		if err != nil {
			return nil, err
		}
		var models []string
		if len(rc.Models) > 0 {
			models = append([]string(nil), rc.Models...)
		}
		if err := add(rb, rc.Weight, rc.MaxConc, models, rc.Protocols); err != nil {
			return nil, err
		}
	}
	for _, b := range opts.Backends {
		if err := add(b, 1, slots(b), nil, nil); err != nil {
			return nil, err
		}
	}

	protocols, err := protocolRoutes(opts.Protocols)
	if err != nil {
		return nil, err
	}
	g := &Gateway{opts: opts, log: opts.Logger, registry: opts.Registry, reserver: opts.Reserver,
		bodies: &bodyBudget{max: opts.BodyBudgetBytes}, redeemLimits: newRedeemLimiter(opts.RedeemPerMinute), protocols: protocols}
	g.cut, g.cutRequests = context.WithCancel(context.Background())
	if g.registry == nil {
		g.registry = prometheus.NewRegistry()
		g.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if g.reserver == nil {
		g.reserver = logReserver{log: g.log}
	}
	if opts.Webhooks != nil {
		g.webhooks = http.MaxBytesHandler(opts.Webhooks, opts.WebhookMaxBodyBytes)
	}
	g.router = newRouter(g.log, members, opts.Aliases, opts.EjectBase, opts.EjectMax)
	g.router.announce(opts.OnNewModels)
	m, err := newMetrics(g.registry, g.router, g.bodies)
	if err != nil {
		return nil, fmt.Errorf("serve: register metrics: %w", err)
	}
	g.metrics = m
	g.router.upstreamErrors = m.upstreamError
	if err := g.startQueue(); err != nil {
		return nil, err
	}
	return g, nil
}

// Registry is where the gateway's metrics live; register more on it.
func (g *Gateway) Registry() *prometheus.Registry { return g.registry }

// CheckBackends runs one active health check (and model discovery) now.
func (g *Gateway) CheckBackends(ctx context.Context) { g.router.check(ctx, g.opts.HealthTimeout) }

// RunHealthChecks checks backends every HealthInterval until ctx ends.
func (g *Gateway) RunHealthChecks(ctx context.Context) {
	t := time.NewTicker(g.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.router.check(ctx, g.opts.HealthTimeout)
		}
	}
}

// adminOn reports whether the admin API is served on listener (AdminAPIOnAPI
// or AdminAPIOnAdmin).
func (g *Gateway) adminOn(listener string) bool {
	return g.opts.Admin != nil && g.opts.AdminAPI == listener
}

// AdminHandler serves /metrics (and /healthz) for the admin listener, and
// the admin API when AdminAPI is AdminAPIOnAdmin.
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	if g.adminOn(AdminAPIOnAdmin) {
		// The same request id, key check, limits, metrics and access log
		// as on the public listener.
		mux.HandleFunc(admin.Prefix, func(w http.ResponseWriter, r *http.Request) { g.serve(w, r, g.adminAPI) })
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.registry, promhttp.HandlerOpts{Registry: g.registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return mux
}

// logReserver is the default Reserver until a ledger is wired: it holds
// nothing and logs each request's usage once.
type logReserver struct{ log *slog.Logger }

func (l logReserver) Reserve(_ context.Context, r billing.ReserveRequest) (billing.Hold, error) {
	return logHold{log: l.log, r: r}, nil
}

type logHold struct {
	log *slog.Logger
	r   billing.ReserveRequest
}

func (h logHold) Settle(ctx context.Context, used billing.Usage) {
	h.log.LogAttrs(ctx, slog.LevelInfo, "usage",
		slog.String("request_id", h.r.RequestID), slog.String("tenant", h.r.Principal.TenantID),
		slog.String("key_id", h.r.Principal.KeyID), slog.String("model", h.r.Model),
		slog.Int64("prompt_tokens", used.PromptTokens), slog.Int64("completion_tokens", used.CompletionTokens))
}
