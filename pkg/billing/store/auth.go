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
type Authenticator struct {
	st       keyLookuper
	ttl      time.Duration
	now      func() time.Time
	maxItems int

	mu    sync.Mutex
	cache map[string]cachedKey
}

type cachedKey struct {
	key     Key
	tenant  Tenant
	fetched time.Time
}

// DefaultAuthTTL bounds how stale a cached key may be.
const DefaultAuthTTL = 500 * time.Millisecond

// NewAuthenticator returns a cached authenticator over st; ttl ≤ 0 means
// DefaultAuthTTL.
func NewAuthenticator(st keyLookuper, ttl time.Duration) *Authenticator {
	return newAuthenticator(st, ttl, time.Now)
}

func newAuthenticator(st keyLookuper, ttl time.Duration, now func() time.Time) *Authenticator {
	if ttl <= 0 {
		ttl = DefaultAuthTTL
	}
	return &Authenticator{st: st, ttl: ttl, now: now, maxItems: 10000, cache: map[string]cachedKey{}}
}

// Authenticate resolves a bearer key into a Principal. The error wraps
// ErrInvalidKey, ErrRevoked or ErrExpired for a bad key; any other error is
// the store failing.
func (a *Authenticator) Authenticate(ctx context.Context, bearer string) (billing.Principal, error) {
	id, secret, err := ParseKey(bearer)
	if err != nil {
		return billing.Principal{}, err
	}
	now := a.now()
	a.mu.Lock()
	c, ok := a.cache[id]
	a.mu.Unlock()
	if !ok || now.Sub(c.fetched) >= a.ttl {
		k, t, err := a.st.LookupKey(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return billing.Principal{}, fmt.Errorf("%w: unknown key", ErrInvalidKey)
		}
		if err != nil {
			return billing.Principal{}, fmt.Errorf("look up key: %w", err)
		}
		c = cachedKey{key: k, tenant: t, fetched: now}
		a.mu.Lock()
		if len(a.cache) >= a.maxItems { // bounded: start over rather than grow without limit
			clear(a.cache)
		}
		a.cache[id] = c
		a.mu.Unlock()
	}
	if subtle.ConstantTimeCompare(HashSecret(secret), c.key.SecretHash) != 1 {
		return billing.Principal{}, fmt.Errorf("%w: wrong secret", ErrInvalidKey)
	}
	if c.key.RevokedAt != nil {
		return billing.Principal{}, ErrRevoked
	}
	if c.key.ExpiresAt != nil && !now.Before(*c.key.ExpiresAt) {
		return billing.Principal{}, ErrExpired
	}
	return billing.Principal{
		TenantID:     c.tenant.ID,
		TenantName:   c.tenant.Name,
		KeyID:        c.key.ID,
		Models:       c.key.Models,
		ExpiresAt:    c.key.ExpiresAt,
		KeyLimits:    c.key.Limits,
		TenantLimits: c.tenant.Limits,
	}, nil
}
