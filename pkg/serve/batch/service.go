package batch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmctl/llmctl/pkg/billing"
)

// Runner runs one batch line through the gateway's request path
// (serve.Gateway.RunLine): auth snapshot, admission, ledger, routing,
// settlement. It returns the status and body a client would have had.
type Runner interface {
	RunLine(ctx context.Context, p billing.Principal, batchID, endpoint string, body []byte, requestID string) (int, []byte)
}

// Options configure a Service; Store and Runner are required.
type Options struct {
	Store  Store
	Runner Runner
	Logger *slog.Logger
	// Limits bound input files; zero fields take the defaults: 100 MiB a
	// file, 8 MiB a line's body, 50,000 lines, 100 errors reported.
	Limits Limits
	// Concurrency is how many lines run at once across all batches (default 4).
	Concurrency int
	// PollInterval is how often the worker looks for work it was not told
	// of (another replica's batches, a restart's leftovers); default 2s.
	PollInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Registerer gets the batches' metrics (metrics.go); nil registers none.
	Registerer prometheus.Registerer
	// LeaseTTL is how long a replica's lease on a batch lasts past its
	// last renewal (default 30s): a killed replica's batch is taken over
	// that long after its last renewal (lease.go).
	LeaseTTL time.Duration
	// LeaseRenew is how often the lease is renewed (default a third of
	// LeaseTTL; less than LeaseTTL). A replica stops starting lines
	// LeaseRenew before its lease could end, so it also bounds the clock
	// skew between replicas that the lease tolerates.
	LeaseRenew time.Duration
	// Owner names this process in the leases (default host/pid/random).
	Owner string
}

// Service is the Files and Batches API and the worker that runs batches.
type Service struct {
	opts Options
	log  *slog.Logger
	// store is Options.Store as given (metrics.go wraps opts.Store).
	store Store
	mux   *http.ServeMux
	// slots bound the lines running (Options.Concurrency); toRecord,
	// the lines started and not yet recorded (worker.go).
	slots, toRecord chan struct{}
	// wake tells the worker a batch was created or cancelled.
	wake chan struct{}

	mu      sync.Mutex
	running map[string]bool // batch ids this process is working on
}

// New builds the service; call Run to start its worker.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.Runner == nil {
		return nil, errors.New("batch: a Store and a Runner are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&opts.Limits.MaxFileBytes, 100<<20)
	def(&opts.Limits.MaxLineBytes, 8<<20)
	if opts.Limits.MaxLines <= 0 {
		opts.Limits.MaxLines = 50_000
	}
	if opts.Limits.MaxErrors <= 0 {
		opts.Limits.MaxErrors = 100
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 30 * time.Second
	}
	if opts.LeaseRenew <= 0 {
		opts.LeaseRenew = opts.LeaseTTL / 3
	}
	if opts.LeaseRenew >= opts.LeaseTTL {
		return nil, fmt.Errorf("batch: the lease renewal interval %s must be shorter than its TTL %s", opts.LeaseRenew, opts.LeaseTTL)
	}
	if opts.Owner == "" {
		opts.Owner = newOwner()
	}
	s := &Service{opts: opts, log: opts.Logger, slots: make(chan struct{}, opts.Concurrency),
		toRecord: make(chan struct{}, recordAhead*opts.Concurrency),
		wake:     make(chan struct{}, 1), running: map[string]bool{}}
	s.opts.Runner = &quotaRunner{next: opts.Runner, running: s.isRunning, out: map[string]string{}} // quota.go
	s.store = opts.Store
	if opts.Registerer != nil {
		if err := s.register(opts.Registerer); err != nil {
			return nil, err
		}
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /v1/files", s.uploadFile)
	s.mux.HandleFunc("GET /v1/files", s.listFiles)
	s.mux.HandleFunc("GET /v1/files/{id}", s.getFile)
	s.mux.HandleFunc("GET /v1/files/{id}/content", s.fileContent)
	s.mux.HandleFunc("DELETE /v1/files/{id}", s.deleteFile)
	s.mux.HandleFunc("POST /v1/batches", s.createBatch)
	s.mux.HandleFunc("GET /v1/batches", s.listBatches)
	s.mux.HandleFunc("GET /v1/batches/{id}", s.getBatch)
	s.mux.HandleFunc("POST /v1/batches/{id}/cancel", s.cancelBatch)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "unknown_url", "",
			fmt.Sprintf("unknown URL: %s %s", r.Method, r.URL.Path))
	})
	return s, nil
}

// principalKey carries the caller from ServeBatchAPI to the handlers.
type principalKey struct{}

// ServeBatchAPI serves one API call of the authenticated caller p
// (serve.BatchAPI).
func (s *Service) ServeBatchAPI(w http.ResponseWriter, r *http.Request, p billing.Principal) {
	s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
}

func principal(r *http.Request) billing.Principal {
	p, _ := r.Context().Value(principalKey{}).(billing.Principal)
	return p
}

// newID is prefix + the time in hex + 16 random hex digits: unique, and
// ordered by creation, so the list's order (created_at, then id) is the
// order of creation within a second too.
func newID(prefix string, now time.Time) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%016x%s", prefix, now.UnixNano(), hex.EncodeToString(b[:]))
}

// notify wakes the worker without blocking.
func (s *Service) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// RunnerFunc adapts a function to Runner (the gateway's RunLine, bound
// after both are built).
type RunnerFunc func(ctx context.Context, p billing.Principal, batchID, endpoint string, body []byte, requestID string) (int, []byte)

// RunLine calls f.
func (f RunnerFunc) RunLine(ctx context.Context, p billing.Principal, batchID, endpoint string, body []byte, requestID string) (int, []byte) {
	return f(ctx, p, batchID, endpoint, body, requestID)
}
