// Package plan runs a short, bounded load probe through the gateway at
// rising concurrency and turns what it measured (generated tokens per
// second, time to first token) into limits to configure: maxConcurrency,
// a per-tenant TPM, and how many tokens a day the box can sell at a TTFT
// p99 target (`llmctl plan`).
package plan

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/llmctl/llmctl/pkg/preflight/canary"
)

// Options bound the probe.
type Options struct {
	Server, Key, Model string
	// Levels are the concurrencies tried, in order (default 1, 2, 4, 8).
	Levels []int
	// PerLevel is the number of requests per level (at least the level).
	PerLevel int
	// MaxTokens per request.
	MaxTokens int
	// TTFTTarget is the p99 time to first token the suggestion must meet.
	TTFTTarget time.Duration
	// Budget bounds the whole probe; levels not reached are left out.
	Budget time.Duration
	// Tenants shares the box's TPM among this many tenants (default 1).
	Tenants int
	HTTP    *http.Client
}

// Level is what one concurrency measured.
type Level struct {
	Concurrency     int           `json:"concurrency"`
	Requests        int           `json:"requests"`
	Errors          int           `json:"errors"`
	TokensPerSecond float64       `json:"tokensPerSecond"`
	TTFTP50         time.Duration `json:"ttftP50"`
	TTFTP99         time.Duration `json:"ttftP99"`
	MeetsTarget     bool          `json:"meetsTarget"`
}

// Plan is the probe's outcome and the suggestion.
type Plan struct {
	Model      string        `json:"model"`
	TTFTTarget time.Duration `json:"ttftTarget"`
	Levels     []Level       `json:"levels"`
	// MaxConcurrency is the highest level that met the target with no
	// errors (0: none did).
	MaxConcurrency int `json:"maxConcurrency"`
	// TokensPerSecond is that level's generated tokens per second.
	TokensPerSecond float64 `json:"tokensPerSecond"`
	// TenantTPM = tokens/s × 60 / tenants.
	TenantTPM int64 `json:"tenantTPM"`
	// TokensPerDay = tokens/s × 86 400.
	TokensPerDay int64  `json:"tokensPerDay"`
	Summary      string `json:"summary"`
}

// Run probes each level in turn until the budget is spent or a level
// misses the target (higher levels would only queue more).
func Run(ctx context.Context, o Options) (Plan, error) {
	if len(o.Levels) == 0 {
		o.Levels = []int{1, 2, 4, 8}
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 2 * time.Minute}
	}
	o.Tenants = max(o.Tenants, 1)
	ctx, cancel := context.WithTimeout(ctx, o.Budget)
	defer cancel()
	p := Plan{Model: o.Model, TTFTTarget: o.TTFTTarget}
	for _, c := range o.Levels {
		if ctx.Err() != nil {
			break
		}
		l := probe(ctx, o, c)
		if ctx.Err() != nil && l.Requests < max(o.PerLevel, c) {
			break // cut by the budget: not a full measurement
		}
		p.Levels = append(p.Levels, l)
		if !l.MeetsTarget {
			break
		}
		p.MaxConcurrency, p.TokensPerSecond = c, l.TokensPerSecond
	}
	if len(p.Levels) == 0 {
		return p, fmt.Errorf("no level finished within %s: raise --budget or lower --per-level", o.Budget)
	}
	p.TenantTPM = int64(p.TokensPerSecond * 60 / float64(o.Tenants))
	p.TokensPerDay = int64(p.TokensPerSecond * 86_400)
	if p.MaxConcurrency == 0 {
		p.Summary = fmt.Sprintf("even one request at a time missed TTFT p99 < %s: this box cannot sell %s at that target", o.TTFTTarget, o.Model)
	} else {
		p.Summary = fmt.Sprintf("this box can sell ≈ %.2f M tokens/day of %s at TTFT p99 < %s (maxConcurrency %d, %.1f tokens/s)",
			float64(p.TokensPerDay)/1e6, o.Model, o.TTFTTarget, p.MaxConcurrency, p.TokensPerSecond)
	}
	return p, nil
}

// probe runs PerLevel requests with c in flight at a time.
func probe(ctx context.Context, o Options, c int) Level {
	n := max(o.PerLevel, c)
	jobs := make(chan int)
	var (
		mu     sync.Mutex
		ttfts  []time.Duration
		tokens int64
		errs   int
	)
	start := time.Now()
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for i := range jobs {
				a, err := canary.Stream(ctx, o.HTTP, o.Server, o.Key, o.Model, fmt.Sprintf("Plan probe %d: tell a short story.", i), o.MaxTokens)
				mu.Lock()
				if err != nil || a.TTFT == 0 {
					errs++
				} else {
					ttfts = append(ttfts, a.TTFT)
					tokens += a.Completion
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	wall := time.Since(start)
	l := Level{Concurrency: c, Requests: len(ttfts) + errs, Errors: errs}
	if wall > 0 {
		l.TokensPerSecond = float64(tokens) / wall.Seconds()
	}
	l.TTFTP50, l.TTFTP99 = quantile(ttfts, 0.50), quantile(ttfts, 0.99)
	l.MeetsTarget = errs == 0 && len(ttfts) > 0 && l.TTFTP99 < o.TTFTTarget
	return l
}

// quantile is the nearest-rank quantile (0 for no samples).
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
