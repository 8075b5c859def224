package store

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
)

// countingStore is a real store that counts the authenticator's round trips.
type countingStore struct {
	Store
	lookups atomic.Int64
}

func (c *countingStore) LookupKey(ctx context.Context, id string) (Key, Tenant, error) {
	c.lookups.Add(1)
	return c.Store.LookupKey(ctx, id)
}

// realStore names a real database; dsn makes a fresh, empty one.
type realStore struct {
	name string
	dsn  func(tb testing.TB) string
}

func realStores() []realStore {
	return []realStore{
		{"sqlite", func(tb testing.TB) string { return "sqlite:" + filepath.Join(tb.TempDir(), "llmctl.db") }},
		{"postgres", func(tb testing.TB) string { return testenv.PG(tb).NewDatabase(tb) }},
	}
}

func openReal(tb testing.TB, dsn string) Store {
	tb.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// Repeating an unknown id within the TTL costs one lookup; after the TTL one
// more; a key created after the miss works once the TTL has passed.
func TestAuthenticatorNegativeCache(t *testing.T) {
	for _, rs := range realStores() {
		t.Run(rs.name, func(t *testing.T) {
			ctx := context.Background()
			st := &countingStore{Store: openReal(t, rs.dsn(t))}
			if _, err := st.CreateTenant(ctx, "acme", billing.Limits{}); err != nil {
				t.Fatal(err)
			}
			now := time.Unix(500, 0)
			const ttl = 500 * time.Millisecond
			a := newAuthenticator(st, ttl, func() time.Time { return now })
			_, full, _, err := newKeyMaterial() // a well-formed key the store does not have yet
			if err != nil {
				t.Fatal(err)
			}
			auth := func() error { _, err := a.Authenticate(ctx, full); return err }
			expect := func(step string, lookups int64, wantErr error) {
				t.Helper()
				if err := auth(); !errors.Is(err, wantErr) && !(wantErr == nil && err == nil) {
					t.Fatalf("%s: Authenticate = %v, want %v", step, err, wantErr)
				}
				if got := st.lookups.Load(); got != lookups {
					t.Fatalf("%s: %d store lookups, want %d", step, got, lookups)
				}
			}
			for range 5 {
				expect("unknown id within TTL", 1, ErrInvalidKey)
			}
			now = now.Add(ttl)
			expect("unknown id after TTL", 2, ErrInvalidKey)
			expect("unknown id again", 2, ErrInvalidKey)

			// Created after the miss: still the cached miss within TTL,
			// valid after it.
			if _, _, err := st.CreateKey(ctx, NewKey{Tenant: "acme", Import: full}); err != nil {
				t.Fatal(err)
			}
			now = now.Add(ttl - time.Millisecond)
			expect("new key within the miss's TTL", 2, ErrInvalidKey)
			now = now.Add(time.Millisecond)
			expect("new key after TTL", 3, nil)
			expect("new key cached", 3, nil)
		})
	}
}

// A flood of made-up ids stays bounded and does not evict valid keys; a
// store failure is not remembered as a miss.
func TestAuthenticatorNegativeCacheBounded(t *testing.T) {
	for _, rs := range realStores() {
		t.Run(rs.name, func(t *testing.T) {
			ctx := context.Background()
			dsn := rs.dsn(t)
			st := &countingStore{Store: openReal(t, dsn)}
			if _, err := st.CreateTenant(ctx, "acme", billing.Limits{}); err != nil {
				t.Fatal(err)
			}
			_, valid, err := st.CreateKey(ctx, NewKey{Tenant: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Unix(500, 0)
			a := newAuthenticator(st, time.Second, func() time.Time { return now })
			a.maxItems = 4
			if _, err := a.Authenticate(ctx, valid); err != nil {
				t.Fatal(err)
			}
			for i := range 3 * a.maxItems {
				bogus := KeyPrefix + keyEncoding.EncodeToString([]byte{byte(i), 1, 2, 3, 4, 5, 6, 7})[:publicIDLen] + "_secret"
				if _, err := a.Authenticate(ctx, bogus); !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("bogus id %d: %v", i, err)
				}
				a.mu.Lock()
				n := len(a.missing)
				a.mu.Unlock()
				if n > a.maxItems {
					t.Fatalf("negative cache holds %d ids, bound %d", n, a.maxItems)
				}
			}
			before := st.lookups.Load()
			if _, err := a.Authenticate(ctx, valid); err != nil {
				t.Fatal(err)
			}
			if got := st.lookups.Load(); got != before {
				t.Fatalf("valid key looked up again after a flood of unknown ids (%d -> %d lookups)", before, got)
			}

			// The database gone: an error, not an invalid key, and not cached.
			_, unknown, _, err := newKeyMaterial()
			if err != nil {
				t.Fatal(err)
			}
			st.Store.Close()
			if _, err := a.Authenticate(ctx, unknown); err == nil || errors.Is(err, ErrInvalidKey) {
				t.Fatalf("store closed: got %v, want a store error", err)
			}
			st.Store = openReal(t, dsn)
			before = st.lookups.Load()
			if _, err := a.Authenticate(ctx, unknown); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("store back: got %v", err)
			}
			if got := st.lookups.Load(); got != before+1 {
				t.Fatalf("a failed lookup was cached as a miss: %d lookups, want %d", got, before+1)
			}
		})
	}
}
