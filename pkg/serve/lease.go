package serve

// A lease is one request's use of one backend, handed out by the router:
// it owns the backend's concurrency slot and reports how the use went
// (health and the upstream error metric), so callers never do the router's
// bookkeeping themselves.

type lease struct {
	r      *router
	m      *member
	over   bool
	onDone func() // before the slot is released (a batch line's share, batchqueue.go)
	// occ counts the lease as an interactive request in service until it
	// is done (the auto batch headroom, batchheadroom.go); nil: not counted.
	occ *occupancy
}

// lease picks a backend for model as pick does and leases it, or nil.
func (r *router) lease(model string, tried map[*member]bool) *lease {
	m := r.pick(model, tried)
	if m == nil {
		return nil
	}
	return &lease{r: r, m: m}
}

func (l *lease) name() string { return l.m.name() }

// answered records that the backend answered (ending a passive ejection
// at once, as any success does).
func (l *lease) answered() { l.r.succeeded(l.m) }

// done ends the lease: a backend failure (err, classified) is counted and
// may eject the backend; the slot is released. nil means no failure of the
// backend's. Only the first call counts.
func (l *lease) done(err error) {
	if l.over {
		return
	}
	l.over = true
	if err != nil {
		if v := classify(err); v.reason != "" {
			if l.r.upstreamErrors != nil {
				l.r.upstreamErrors.WithLabelValues(l.name(), v.reason).Inc()
			}
			if v.eject {
				l.r.failed(l.m)
			}
		}
	}
	if l.onDone != nil {
		l.onDone()
	}
	if l.occ != nil {
		l.r.q.interactiveDone(l.occ)
	}
	l.r.release(l.m)
	l.r.drain() // a waiter may take the slot
}
