package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/limits"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/gpu/nvmlprobe"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/admin"
	"github.com/llmctl/llmctl/pkg/serve/batch"
	"github.com/llmctl/llmctl/pkg/serve/config"
	"github.com/llmctl/llmctl/pkg/serve/engine"
	"github.com/llmctl/llmctl/pkg/serve/gpumetrics"
)

// serveOptions binds `llmctl serve` flags; Complete layers them over env,
// the --config file and the embedded defaults.
type serveOptions struct {
	g *globals

	listen       string
	adminListen  string
	adminAPI     string
	db           string
	backends     []string
	maxBodyBytes int64
	bodyBudget   int64
	bodyTimeout  time.Duration
	redis        string
	failMode     string
	models       []string
	engThreads   int
	demo         bool
	changed      func(name string) bool
	billing      serveBillingOptions
	alerts       serveAlertsOptions

	cfg config.Config
}

func newServeCmd(g *globals) *cobra.Command {
	o := &serveOptions{g: g}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the OpenAI-compatible gateway (API keys, routing, streaming, metrics)",
		Long: `Run the OpenAI-compatible gateway in front of one or more backends.

Settings come from flags, then LLMCTL_* environment variables, then the
--config YAML file, then embedded defaults (SQLite in the XDG data dir,
API on 127.0.0.1:8080, metrics on 127.0.0.1:9090). On an empty store an
admin tenant is created and its key printed once as "admin key: sk-llm-…".`,
		Example: `  llmctl serve --backend vllm=http://127.0.0.1:8000
  llmctl serve --config serve.yaml --db postgres://llmctl@db/llmctl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.changed = cmd.Flags().Changed
			if err := o.Complete(os.LookupEnv); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.billing.load(o.cfg.Billing); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "", "public API address (env LLMCTL_LISTEN; default 127.0.0.1:8080)")
	f.StringVar(&o.adminListen, "admin-listen", "", `admin address serving /metrics, "off" to disable (env LLMCTL_ADMIN_LISTEN; default 127.0.0.1:9090)`)
	f.StringVar(&o.adminAPI, "admin-api", "", `where the admin API (/admin/v1/, admin keys only) is served: api (the public listener), admin (the admin listener) or off (env LLMCTL_ADMIN_API; default api)`)
	f.StringVar(&o.db, "db", "", "database: postgres://… or sqlite:PATH (env LLMCTL_DB; default SQLite in the data dir)")
	f.StringArrayVar(&o.backends, "backend", nil, "backend NAME=URL, repeatable; models discovered from URL/v1/models (env LLMCTL_BACKENDS, comma-separated)")
	f.Int64Var(&o.maxBodyBytes, "max-body-bytes", 0, "largest request body accepted, else 413 (env LLMCTL_MAX_BODY_BYTES; default 8 MiB)")
	f.Int64Var(&o.bodyBudget, "body-budget-bytes", 0, "bytes all request bodies in flight may buffer together, else 503 (env LLMCTL_BODY_BUDGET_BYTES; default 64 MiB)")
	f.DurationVar(&o.bodyTimeout, "body-read-timeout", 0, "time to receive one request body after its headers, else 408 (env LLMCTL_BODY_READ_TIMEOUT; default 30s)")
	f.StringVar(&o.redis, "redis", "", "Redis URL for rate limits shared by replicas, redis://… (env LLMCTL_REDIS; default: limits kept in process)")
	f.StringVar(&o.failMode, "rate-limit-fail-mode", "", "while Redis is down: open (limit per replica) or closed (503) (env LLMCTL_RATE_LIMIT_FAIL_MODE; default open)")
	f.StringArrayVar(&o.models, "model", nil, "GGUF model file for the embedded CPU engine, repeatable (env LLMCTL_MODELS, comma-separated)")
	f.IntVar(&o.engThreads, "engine-threads", 0, "engine threads per model, 0 = all CPUs (env LLMCTL_ENGINE_THREADS)")
	f.BoolVar(&o.demo, "demo", true, "serve the bundled demo model (a tiny llama trained on the King James Bible) when no backend and no model is configured (env LLMCTL_DEMO)")
	o.billing.bind(cmd)
	o.alerts.bind(cmd)
	return cmd
}

// Complete builds the effective config: defaults < file < env < flags.
func (o *serveOptions) Complete(lookup func(string) (string, bool)) error {
	dsn, err := store.DefaultDSN()
	if err != nil {
		return err
	}
	o.cfg = config.Defaults(dsn)
	path := o.g.ConfigFile
	if path == "" {
		path, _ = lookup("LLMCTL_CONFIG")
	}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		err = o.cfg.MergeFile(path, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	if err := o.cfg.MergeEnv(lookup); err != nil {
		return err
	}
	if o.changed("listen") {
		o.cfg.Listen = o.listen
	}
	if o.changed("admin-listen") {
		o.cfg.AdminListen = o.adminListen
	}
	if o.changed("admin-api") {
		o.cfg.AdminAPI = o.adminAPI
	}
	if o.changed("db") {
		o.cfg.DB = o.db
	}
	if o.changed("max-body-bytes") {
		o.cfg.MaxBodyBytes = o.maxBodyBytes
	}
	if o.changed("body-budget-bytes") {
		o.cfg.BodyBudgetBytes = o.bodyBudget
	}
	if o.changed("body-read-timeout") {
		o.cfg.BodyReadTimeout = o.bodyTimeout
	}
	if o.changed("redis") {
		o.cfg.Limits.Redis = o.redis
	}
	if o.changed("rate-limit-fail-mode") {
		o.cfg.Limits.FailMode = limits.FailMode(o.failMode)
	}
	if o.changed("model") {
		o.cfg.Models = config.ParseModels(o.models)
	}
	if o.changed("engine-threads") {
		o.cfg.EngineThreads = o.engThreads
	}
	if o.changed("demo") {
		o.cfg.Demo = o.demo
	}
	if o.changed("backend") {
		bs, err := config.ParseBackends(o.backends)
		if err != nil {
			return fmt.Errorf("--backend: %w", err)
		}
		o.cfg.Backends = bs
	}
	o.billing.apply(&o.cfg.Billing, o.changed)
	return o.alerts.apply(&o.cfg, o.changed, lookup)
}

// Validate checks the effective config.
func (o *serveOptions) Validate() error { return o.cfg.Validate() }

// Run serves until the context ends (SIGINT/SIGTERM), then logs "stopped"
// once everything, the ledger's flush included, is done.
func (o *serveOptions) Run(ctx context.Context) error {
	log, err := o.g.Logger()
	if err != nil {
		return err
	}
	if err := o.serve(ctx, log); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// serve opens the store, bootstraps the admin key, and serves until the
// context ends, draining in-flight requests.
func (o *serveOptions) serve(ctx context.Context, log *slog.Logger) error {
	// One database handle, migrated once, for the store and the ledger;
	// closed last, after the ledger's flush (deferred below).
	db, err := store.OpenDB(ctx, o.cfg.DB, store.WithPool(o.cfg.DBPool))
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer db.Close()
	st := db.Store()
	key, err := serve.EnsureAdmin(ctx, st, o.cfg.AdminKey)
	if err != nil {
		return err
	}
	if key != "" {
		// Printed once to stdout, never logged: it is not stored anywhere.
		fmt.Fprintf(o.g.Out, "admin key: %s\n", key)
	}

	opts := serve.Options{
		Logger:           log,
		Auth:             store.NewAuthenticator(st, o.cfg.KeyCacheTTL),
		Ready:            st.Ping,
		Aliases:          o.cfg.Aliases,
		MaxBodyBytes:     o.cfg.MaxBodyBytes,
		BodyBudgetBytes:  o.cfg.BodyBudgetBytes,
		BodyReadTimeout:  o.cfg.BodyReadTimeout,
		DefaultMaxTokens: o.cfg.DefaultMaxTokens,
		HealthInterval:   o.cfg.HealthInterval,
		AdminAPI:         o.cfg.AdminAPI,
		Queue:            queueOptions(o.cfg.Queue),
		Fallbacks:        o.cfg.Fallbacks,
		FallbackOnQueue:  o.cfg.Queue.FallbackOnQueue,
		ContextFallbacks: o.cfg.ContextFallbacks,
	}
	for _, b := range o.cfg.Backends {
		apiKey := b.APIKey
		if b.APIKeyEnv != "" {
			apiKey = os.Getenv(b.APIKeyEnv)
		}
		opts.Remotes = append(opts.Remotes, serve.RemoteConfig{
			Name: b.Name, URL: b.URL, APIKey: apiKey, Models: b.Models, Weight: b.Weight, MaxConc: b.MaxConcurrency, Protocols: b.Protocols,
			ConnectTimeout: o.cfg.Timeouts.Connect, FirstByteTimeout: o.cfg.Timeouts.FirstByte, TotalTimeout: o.cfg.Timeouts.Total,
		})
	}
	// Rate limits: on Redis when configured, else in process; their metric
	// goes on the gateway's registry.
	opts.Registry = prometheus.NewRegistry()
	opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if nvmlprobe.Available { // built with cgo and -tags nvml: the llmctl_gpu_* gauges
		opts.Registry.MustRegister(gpumetrics.New(nvmlprobe.Open()))
	}
	lim, closeRedis, err := o.cfg.Limits.Open(log, opts.Registry)
	if err != nil {
		return fmt.Errorf("rate limits: %w", err)
	}
	defer closeRedis()
	defer lim.Close()
	opts.Admitter = lim
	// The ledger (Reserver) and payment webhooks, on the same registry.
	o.billing.alerts = o.cfg.Alerts.Enabled()
	bill, err := o.billing.open(db, st, opts.Registry, log)
	if err != nil {
		return err
	}
	defer func() {
		// Flush the ledger's spool into the database on shutdown; what
		// cannot be written in time stays on disk for the next start.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := bill.close(fctx); err != nil {
			log.Error("ledger flush on shutdown", "err", err)
		}
	}()
	opts.Reserver, opts.Webhooks = bill.reserver, bill.webhooks
	if bill.ledger != nil {
		opts.OnNewModels = warnUnpriced(o.billing.priceList, log)
	}
	outbox, stopAlerts, err := startAlerts(ctx, o.cfg.Alerts, bill.ledger, st, opts.Registry, log)
	if err != nil {
		return err
	}
	defer stopAlerts()
	aopts := admin.Options{Store: st, Logger: log, MaxBodyBytes: o.cfg.MaxBodyBytes, Alerts: outbox}
	if bill.ledger != nil {
		lv := admin.FromLedger(bill.ledger)
		aopts.Ledger, opts.Ledger = lv, lv
		aopts.Vouchers, opts.Vouchers = bill.ledger.Store(), bill.ledger.Store()
		prices := bill.ledger.Prices()
		aopts.Prices = &prices
		opts.RedeemPerMinute = o.cfg.Billing.RedeemAttemptsPerMinute
	}
	if o.cfg.AdminAPI != serve.AdminAPIOff {
		if opts.Admin, err = admin.New(aopts); err != nil {
			return err
		}
	}
	engines, err := o.openEngines(ctx, log)
	if err != nil {
		return err
	}
	defer func() {
		for _, e := range engines {
			_ = e.Close()
		}
	}()
	for _, e := range engines {
		opts.Backends = append(opts.Backends, e)
		// Its own token counters, for `llmctl ledger reconcile`.
		opts.Registry.MustRegister(e.Collector())
	}
	// The Files and Batches API on the same database; its worker runs each
	// line through the gateway's own path (gw, set just below), so limits,
	// holds and settlement apply as to any request.
	var gw *serve.Gateway
	batches, err := batch.New(batch.Options{Store: batch.OnDB(db), Logger: log, Registerer: opts.Registry,
		LeaseTTL: o.cfg.Batch.LeaseTTL, LeaseRenew: o.cfg.Batch.LeaseRenew,
		Limits: batch.Limits{MaxFileBytes: o.cfg.Batch.MaxFileBytes, MaxLineBytes: cmp.Or(o.cfg.Batch.MaxLineBytes, o.cfg.MaxBodyBytes),
			MaxLines: o.cfg.Batch.MaxLines},
		Runner: batch.RunnerFunc(func(ctx context.Context, p billing.Principal, batchID, endpoint string, body []byte, requestID string) (int, []byte) {
			return gw.RunLine(ctx, p, batchID, endpoint, body, requestID)
		})})
	if err != nil {
		return err
	}
	opts.Batches = batches
	if gw, err = serve.New(opts); err != nil {
		return err
	}
	go batches.Run(ctx)
	admin := o.cfg.AdminListen
	if admin == "off" {
		admin = ""
	}
	return gw.Serve(ctx, serve.ServerOptions{
		Listen: o.cfg.Listen, AdminListen: admin, ShutdownGrace: o.cfg.ShutdownGrace,
		OnListening: func(api, adm net.Addr) { printListening(o.g.Out, api, adm) },
	})
}

// openEngines loads the configured GGUF models into the embedded engine, or
// the demo model when nothing else would answer.
// A SIGTERM during the read of a large model stops it between chunks.
func (o *serveOptions) openEngines(ctx context.Context, log *slog.Logger) ([]*engine.Backend, error) {
	var out []*engine.Backend
	for _, m := range o.cfg.Models {
		threads := m.Threads
		if threads == 0 {
			threads = o.cfg.EngineThreads
		}
		b, err := engine.OpenContext(ctx, m.Path, engine.Options{Name: m.Name, Threads: threads, Context: m.Context, Logger: log})
		if err != nil {
			for _, e := range out {
				_ = e.Close()
			}
			return nil, fmt.Errorf("--model %s: %w", m.Path, err)
		}
		out = append(out, b)
	}
	if len(out) == 0 && len(o.cfg.Backends) == 0 && o.cfg.Demo {
		b, err := engine.OpenDemo(engine.Options{Threads: o.cfg.EngineThreads, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("demo model: %w", err)
		}
		log.Info("no backend or model configured: serving the bundled demo model (trained on the King James Bible)", "model", engine.DemoName)
		out = append(out, b)
	}
	return out, nil
}

// printListening writes the line tests and scripts read to find the ports.
func printListening(w io.Writer, api, admin net.Addr) {
	adm := "off"
	if admin != nil {
		adm = "http://" + admin.String()
	}
	fmt.Fprintf(w, "serving: api=http://%s admin=%s\n", api, adm)
}
