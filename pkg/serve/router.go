package serve

import (
	"context"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// member is one backend in the router with its balancing and health state.
type member struct {
	b              Backend
	weight         int64
	maxConcurrency int64    // 0 = unlimited
	staticModels   []string // configured; nil = discover from the backend
	protocols      []string // served natively besides chat (RemoteConfig.Protocols)

	outstanding atomic.Int64

	mu           sync.Mutex
	healthy      bool      // result of the last active check
	failures     int       // consecutive passive failures
	ejectedUntil time.Time // passive ejection with exponential backoff
	models       []string
}

func (m *member) name() string { return m.b.Name() }

// speaks reports whether the backend serves protocol itself.
func (m *member) speaks(protocol string) bool { return slices.Contains(m.protocols, protocol) }

// speakers lists the members serving model natively in protocol.
func (r *router) speakers(model, protocol string) []*member {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*member
	for _, m := range r.byModel[model] {
		if m.speaks(protocol) {
			out = append(out, m)
		}
	}
	return out
}

func (m *member) up(now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.healthy && !now.Before(m.ejectedUntil)
}

// router picks backends: least outstanding requests (weighted) among the
// healthy, non-ejected members serving a model.
type router struct {
	log       *slog.Logger
	members   []*member
	aliases   map[string]string
	ejectBase time.Duration
	ejectMax  time.Duration
	next      atomic.Uint64 // rotates ties
	// upstreamErrors counts the failures leases report (nil: not counted).
	upstreamErrors *prometheus.CounterVec

	mu      sync.RWMutex
	byModel map[string][]*member

	// onNew, if set, hears of every model the first time some backend
	// serves it (under newMu, so calls never overlap or reorder).
	newMu sync.Mutex
	onNew func(models []string)
	seen  map[string]bool
}

// announce sets onNew and tells it of every model served now.
func (r *router) announce(onNew func(models []string)) {
	r.newMu.Lock()
	r.onNew, r.seen = onNew, map[string]bool{}
	r.newMu.Unlock()
	r.reportNew()
}

// reportNew calls onNew with the models not reported before, sorted.
func (r *router) reportNew() {
	r.newMu.Lock()
	defer r.newMu.Unlock()
	if r.onNew == nil {
		return
	}
	var fresh []string
	r.mu.RLock()
	defer r.mu.RUnlock()
	for model := range r.byModel {
		if !r.seen[model] {
			r.seen[model] = true
			fresh = append(fresh, model)
		}
	}
	if len(fresh) > 0 {
		sort.Strings(fresh)
		r.onNew(fresh)
	}
}

func newRouter(log *slog.Logger, members []*member, aliases map[string]string, ejectBase, ejectMax time.Duration) *router {
	r := &router{log: log, members: members, aliases: aliases, ejectBase: ejectBase, ejectMax: ejectMax,
		byModel: map[string][]*member{}}
	for _, m := range members {
		m.healthy = true
		m.models = m.staticModels
	}
	r.rebuild()
	return r
}

func (r *router) rebuild() {
	idx := map[string][]*member{}
	for _, m := range r.members {
		m.mu.Lock()
		for _, model := range m.models {
			idx[model] = append(idx[model], m)
		}
		m.mu.Unlock()
	}
	r.mu.Lock()
	r.byModel = idx
	r.mu.Unlock()
	r.reportNew()
}

// resolve maps a client model name (or alias) to the backend model name and
// reports whether any backend serves it.
func (r *router) resolve(model string) (string, bool) {
	if target, ok := r.aliases[model]; ok {
		model = target
	}
	r.mu.RLock()
	_, ok := r.byModel[model]
	r.mu.RUnlock()
	return model, ok
}

// models lists every servable model name, aliases included, sorted, with the
// backend names serving each.
func (r *router) models() map[string][]string {
	out := map[string][]string{}
	r.mu.RLock()
	for model, ms := range r.byModel {
		for _, m := range ms {
			out[model] = append(out[model], m.name())
		}
	}
	r.mu.RUnlock()
	for alias, target := range r.aliases {
		if owners, ok := out[target]; ok {
			if _, clash := out[alias]; !clash {
				out[alias] = owners
			}
		}
	}
	return out
}

// pick reserves the best member for model that is not in tried, or nil. The
// caller must call release on the member it got. When every candidate is
// passively ejected but still passes active checks, ejection is ignored
// (better a possibly-bad backend than a certain 503).
func (r *router) pick(model string, tried map[*member]bool) *member {
	r.mu.RLock()
	cands := r.byModel[model]
	r.mu.RUnlock()
	now := time.Now()
	if m := r.best(cands, tried, func(m *member) bool { return m.up(now) }); m != nil {
		return m
	}
	return r.best(cands, tried, func(m *member) bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.healthy
	})
}

func (r *router) best(cands []*member, tried map[*member]bool, ok func(*member) bool) *member {
	n := len(cands)
	if n == 0 {
		return nil
	}
	start := int(r.next.Add(1) % uint64(n))
	for {
		var best *member
		var bestOut int64
		for i := range n {
			m := cands[(start+i)%n]
			if tried[m] || !ok(m) {
				continue
			}
			out := m.outstanding.Load()
			if m.maxConcurrency > 0 && out >= m.maxConcurrency {
				continue
			}
			// out/weight < bestOut/bestWeight, without division.
			if best == nil || (out+1)*best.weight < (bestOut+1)*m.weight {
				best, bestOut = m, out
			}
		}
		if best == nil {
			return nil
		}
		if best.maxConcurrency <= 0 {
			best.outstanding.Add(1)
			return best
		}
		if cur := best.outstanding.Add(1); cur <= best.maxConcurrency {
			return best
		}
		best.outstanding.Add(-1) // lost a race for the last slot; look again
	}
}

func (r *router) release(m *member) { m.outstanding.Add(-1) }

// failed records a passive failure: eject for base·2^(n-1), capped.
func (r *router) failed(m *member) {
	m.mu.Lock()
	m.failures++
	d := r.ejectBase << min(m.failures-1, 16)
	if d > r.ejectMax || d <= 0 {
		d = r.ejectMax
	}
	m.ejectedUntil = time.Now().Add(d)
	n := m.failures
	m.mu.Unlock()
	r.log.Warn("backend ejected", "backend", m.name(), "failures", n, "for", d)
}

func (r *router) succeeded(m *member) {
	m.mu.Lock()
	m.failures = 0
	m.ejectedUntil = time.Time{}
	m.mu.Unlock()
}

// check runs one active health check on every member: a successful model
// listing means healthy (and refreshes discovered models).
func (r *router) check(ctx context.Context, timeout time.Duration) {
	var wg sync.WaitGroup
	for _, m := range r.members {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			models, err := m.b.Models(cctx)
			m.mu.Lock()
			was := m.healthy
			m.healthy = err == nil
			if err == nil {
				if m.staticModels == nil {
					sort.Strings(models)
					m.models = models
				}
				// Active success ends a passive ejection early.
				m.failures, m.ejectedUntil = 0, time.Time{}
			}
			m.mu.Unlock()
			if was != (err == nil) {
				if err != nil {
					r.log.Warn("backend down", "backend", m.name(), "err", err)
				} else {
					r.log.Info("backend up", "backend", m.name())
				}
			}
		})
	}
	wg.Wait()
	r.rebuild()
}

// healthyCount counts members passing active health checks.
func (r *router) healthyCount() int {
	n := 0
	for _, m := range r.members {
		m.mu.Lock()
		if m.healthy {
			n++
		}
		m.mu.Unlock()
	}
	return n
}
