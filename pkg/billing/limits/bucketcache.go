package limits

import (
	"sync"

	"github.com/llmctl/llmctl/pkg/billing"
)

// bucketCache keeps the buckets (and owner) a principal's requests are
// checked against, so that a request of a known key builds no store keys,
// ids or argument values: they are the same strings every time, and
// building them was a third of the limiter's allocations. An entry is used
// only for the very limits it was built from; the buckets are never changed
// after they are built (tickets of requests in flight share them).
type bucketCache struct {
	mu sync.RWMutex
	m  map[bucketsKey]*bucketsEntry
}

// maxBucketEntries bounds the cache: past it, it starts again empty (one
// entry per API key and model with its own limits; a rebuild is one
// request's allocations).
const maxBucketEntries = 1 << 14

type bucketsKey struct {
	key, tenant, model string
	perModel           bool
	batch              bool // a batch line's buckets (AdmitBatch)
}

type bucketsEntry struct {
	keyLimits, tenantLimits billing.Limits // the principal's stored limits it was built for
	buckets                 []bucket
	owner                   string
}

// ownerOf is who holds a request's concurrency slots: its key, or its
// tenant when it has none.
func ownerOf(p billing.Principal) string {
	if p.KeyID == "" {
		return "t:" + p.TenantID
	}
	return "k:" + p.KeyID
}

// forRequest returns the buckets and owner of p's request for model.
func (l *Limiter) forRequest(p billing.Principal, model string) ([]bucket, string) {
	k := bucketsKey{key: p.KeyID, tenant: p.TenantID}
	if _, ok := l.cfg.Models[model]; ok { // only configured models have buckets of their own
		k.model, k.perModel = model, true
	}
	return l.cachedBuckets(k, p, model)
}

// cachedBuckets returns the cached buckets of k, built again when p's
// stored limits are not the ones they were built from.
func (l *Limiter) cachedBuckets(k bucketsKey, p billing.Principal, model string) ([]bucket, string) {
	c := &l.bucketCache
	c.mu.RLock()
	e := c.m[k]
	c.mu.RUnlock()
	if e != nil && e.keyLimits == p.KeyLimits && e.tenantLimits == p.TenantLimits {
		return e.buckets, e.owner
	}
	e = &bucketsEntry{keyLimits: p.KeyLimits, tenantLimits: p.TenantLimits, owner: ownerOf(p)}
	if k.batch {
		e.buckets = l.batchBuckets(p)
	} else {
		e.buckets = l.buckets(p, model)
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxBucketEntries {
		c.m = make(map[bucketsKey]*bucketsEntry)
	}
	c.m[k] = e
	c.mu.Unlock()
	return e.buckets, e.owner
}
