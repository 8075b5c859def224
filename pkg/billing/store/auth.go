package store

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
)

// keyLookuper is what the authenticator needs from a Store.
type keyLookuper interface {
	LookupKey(ctx context.Context, id string) (Key, Tenant, error)
}

// Authenticator checks presented API keys against the store, caching valid
// records for a short TTL. A revoke therefore reaches every replica that
// shares the database within TTL: each replica's cache entry expires and the
// next request re-reads the key (default TTL 500 ms, under the 1 s promise).
//
// Unknown ids are cached for the same TTL, so repeating one costs no query:
// an unknown id answers as fast as a known one (no key-id oracle by timing)
// and cannot be used to load the database. A key created after a miss works
// once that TTL has passed.
type Authenticator struct {
	st       keyLookuper
	ttl      time.Duration
	now      func() time.Time
	maxItems int

	mu    sync.Mutex
	cache map[string]cachedKey
	// missing holds when each unknown id was looked up. It is separate from
	// cache so a flood of made-up ids cannot evict the valid keys.
	missing map[string]time.Time
}

type cachedKey struct {
	key     Key
	tenant  Tenant
	fetched time.Time
}

// errSuspended also matches ErrInvalidKey, so a caller that does not know
// ErrSuspended refuses the key (401) instead of taking it for a store
// failure; callers that do check ErrSuspended first.
var errSuspended = fmt.Errorf("%w (%w)", ErrSuspended, ErrInvalidKey)

// errUnknownKey is the answer for an id the store does not have, cached or not.
var errUnknownKey = fmt.Errorf("%w: unknown key", ErrInvalidKey)

// DefaultAuthTTL bounds how stale a cached key may be.
const DefaultAuthTTL = 500 * time.Millisecond

// AuthOption adjusts NewAuthenticator.
type AuthOption func(*Authenticator)

// AuthClock makes the authenticator read time (TTLs, expiry) from now: tests
// step a fake clock across the TTL instead of sleeping.
func AuthClock(now func() time.Time) AuthOption { return func(a *Authenticator) { a.now = now } }

// NewAuthenticator returns a cached authenticator over st; ttl ≤ 0 means
// DefaultAuthTTL.
func NewAuthenticator(st keyLookuper, ttl time.Duration, opts ...AuthOption) *Authenticator {
	a := newAuthenticator(st, ttl, time.Now)
	for _, o := range opts {
		o(a)
	}
	return a
}

func newAuthenticator(st keyLookuper, ttl time.Duration, now func() time.Time) *Authenticator {
	if ttl <= 0 {
		ttl = DefaultAuthTTL
	}
	return &Authenticator{st: st, ttl: ttl, now: now, maxItems: 10000, cache: map[string]cachedKey{}, missing: map[string]time.Time{}}
}

// Authenticate resolves a bearer key into a Principal. The error wraps
// ErrInvalidKey, ErrRevoked, ErrExpired or ErrSuspended (which also matches
// ErrInvalidKey) for a key that may not be used; any other error is the
// store failing.
func (a *Authenticator) Authenticate(ctx context.Context, bearer string) (billing.Principal, error) {
	id, secret, err := ParseKey(bearer)
	if err != nil {
		return billing.Principal{}, err
	}
	// Hashed before anything else so a known id with a wrong secret and an
	// unknown id take the same work: no key-id oracle by timing.
	presented := HashSecret(secret)
	now := a.now()
	c, err := a.record(ctx, id, now)
	if err != nil {
		return billing.Principal{}, err
	}
	if subtle.ConstantTimeCompare(presented, c.key.SecretHash) != 1 {
		return billing.Principal{}, fmt.Errorf("%w: wrong secret", ErrInvalidKey)
	}
	if c.key.RevokedAt != nil {
		return billing.Principal{}, ErrRevoked
	}
	if c.key.ExpiresAt != nil && !now.Before(*c.key.ExpiresAt) {
		return billing.Principal{}, ErrExpired
	}
	if c.tenant.SuspendedAt != nil {
		return billing.Principal{}, errSuspended
	}
	return billing.Principal{
		TenantID:     c.tenant.ID,
		TenantName:   c.tenant.Name,
		KeyID:        c.key.ID,
		Role:         c.key.Role,
		Models:       c.key.Models,
		ExpiresAt:    c.key.ExpiresAt,
		KeyLimits:    c.key.Limits,
		TenantLimits: c.tenant.Limits,
		Priority:     c.key.Priority,
	}, nil
}

// record is key id's record and its tenant's, from the cache while it is
// younger than the TTL, else from the store.
func (a *Authenticator) record(ctx context.Context, id string, now time.Time) (cachedKey, error) {
	a.mu.Lock()
	c, ok := a.cache[id]
	missedAt, missed := a.missing[id]
	a.mu.Unlock()
	if missed && now.Sub(missedAt) < a.ttl {
		return cachedKey{}, errUnknownKey
	}
	if ok && now.Sub(c.fetched) < a.ttl {
		return c, nil
	}
	k, t, err := a.st.LookupKey(ctx, id)
	if errors.Is(err, ErrNotFound) {
		a.mu.Lock()
		putBounded(a.missing, id, now, a.maxItems)
		a.mu.Unlock()
		return cachedKey{}, errUnknownKey
	}
	if err != nil {
		return cachedKey{}, fmt.Errorf("look up key: %w", err)
	}
	c = cachedKey{key: k, tenant: t, fetched: now}
	a.mu.Lock()
	delete(a.missing, id)
	putBounded(a.cache, id, c, a.maxItems)
	a.mu.Unlock()
	return c, nil
}

// StoredLimits returns the limits stored now on key keyID and on its
// tenant, as fresh as Authenticate's (the same cache and TTL). It checks no
// secret: it is for work a key already started, the lines of a batch that
// run as the key it was created with, so that they follow a limit changed
// since.
func (a *Authenticator) StoredLimits(ctx context.Context, keyID string) (key, tenant billing.Limits, err error) {
	c, err := a.record(ctx, keyID, a.now())
	if err != nil {
		return billing.Limits{}, billing.Limits{}, err
	}
	return c.key.Limits, c.tenant.Limits, nil
}

// putBounded stores v under k, emptying m first when it holds max entries:
// bounded memory without per-entry bookkeeping; a clear costs each live id
// one more lookup.
func putBounded[V any](m map[string]V, k string, v V, max int) {
	if _, ok := m[k]; !ok && len(m) >= max {
		clear(m)
	}
	m[k] = v
}
