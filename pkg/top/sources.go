package top

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/llmctl/llmctl/pkg/top/metrics"
)

// GPUSource reads the local GPUs, e.g. through NVML. An error means "not
// available here", after which top falls back to the gateway's gauges.
type GPUSource interface {
	GPUs(ctx context.Context) ([]metrics.GPU, error)
}

// LedgerSource is what the ledger pane reads from the billing database.
type LedgerSource interface {
	// Tenants lists every tenant with its balance and recent spend as of now.
	Tenants(ctx context.Context, now time.Time) ([]TenantRow, error)
	// Entries returns a tenant's newest entries, newest first.
	Entries(ctx context.Context, tenantID string, limit int) ([]Entry, error)
}

// TenantRow is one line of the ledger pane. Money is integer micro-units
// (1 unit = 1_000_000), as in the ledger; spend is positive.
type TenantRow struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Balance     int64  `json:"balanceMicros"`
	Spend1h     int64  `json:"spendHourMicros"`
	Spend24h    int64  `json:"spendDayMicros"`
	Requests1h  int64  `json:"requestsHour"`
	Requests24h int64  `json:"requestsDay"`
}

// Entry is one ledger entry as the drill-down shows it.
type Entry struct {
	Time             time.Time `json:"time"`
	Kind             string    `json:"kind"`
	Amount           int64     `json:"amountMicros"`
	Model            string    `json:"model,omitempty"`
	PromptTokens     int64     `json:"promptTokens,omitempty"`
	CompletionTokens int64     `json:"completionTokens,omitempty"`
	Reason           string    `json:"reason,omitempty"`
}

// ScrapeResult is one target's outcome of a scrape round.
type ScrapeResult struct {
	URL    string
	Scrape metrics.Scrape
	Err    error
}

// Fetcher scrapes one target: metrics.Scraper for URLs, kube.Discovery for
// pods behind the API server.
type Fetcher interface {
	Scrape(ctx context.Context, target string) (metrics.Scrape, error)
}

// Sources does top's IO. Every method is safe to call from a tea.Cmd.
type Sources struct {
	Targets []string
	// Discover, when set, replaces Targets: it is asked for the current
	// targets on every scrape round (pods come and go).
	Discover func(ctx context.Context) ([]string, error)
	Scraper  Fetcher
	GPU      GPUSource    // nil: no local GPU reader
	Ledger   LedgerSource // nil: no --db
	Margin   MarginSource // nil: no --db
	Timeout  time.Duration
}

func (s *Sources) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 2 * time.Second
}

// DiscoveryTarget names the pseudo-target that carries a failed discovery.
const DiscoveryTarget = "kubernetes discovery"

// ScrapeAll scrapes every target concurrently, each under the timeout.
func (s *Sources) ScrapeAll(ctx context.Context) []ScrapeResult {
	targets := s.Targets
	if s.Discover != nil {
		dctx, cancel := context.WithTimeout(ctx, s.timeout())
		ts, err := s.Discover(dctx)
		cancel()
		if err != nil {
			return []ScrapeResult{{URL: DiscoveryTarget, Err: err}}
		}
		targets = ts
	}
	out := make([]ScrapeResult, len(targets))
	var wg sync.WaitGroup
	for i, u := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, s.timeout())
			defer cancel()
			sc, err := s.Scraper.Scrape(ctx, u)
			out[i] = ScrapeResult{URL: u, Scrape: sc, Err: err}
		}()
	}
	wg.Wait()
	return out
}

// ReadGPUs asks the local GPU source, if any.
func (s *Sources) ReadGPUs(ctx context.Context) ([]metrics.GPU, error) {
	if s.GPU == nil {
		return nil, errNoLocalGPU
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	return s.GPU.GPUs(ctx)
}

// ReadTenants reads the ledger pane's rows, if there is a ledger.
func (s *Sources) ReadTenants(ctx context.Context, now time.Time) ([]TenantRow, error) {
	if s.Ledger == nil {
		return nil, errNoLedger
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	rows, err := s.Ledger.Tenants(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return rows, nil
}

// ReadEntries reads one tenant's newest entries.
func (s *Sources) ReadEntries(ctx context.Context, tenantID string, limit int) ([]Entry, error) {
	if s.Ledger == nil {
		return nil, errNoLedger
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	es, err := s.Ledger.Entries(ctx, tenantID, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger entries of %s: %w", tenantID, err)
	}
	return es, nil
}

// ValidateTarget checks a --target value: an absolute http(s) URL. A URL
// with no path gets /metrics.
func ValidateTarget(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--target %q: want an http(s) URL such as http://127.0.0.1:9090/metrics", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/metrics"
	}
	return u.String(), nil
}
