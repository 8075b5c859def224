package store

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
)

func TestKeyMaterial(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		id, full, hash, err := newKeyMaterial()
		if err != nil {
			t.Fatal(err)
		}
		pid, secret, err := ParseKey(full)
		if err != nil || pid != id {
			t.Fatalf("ParseKey(%q) = %q, %v", full, pid, err)
		}
		if string(HashSecret(secret)) != string(hash) {
			t.Fatal("hash mismatch")
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}

func TestParseKeyRejects(t *testing.T) {
	for _, k := range []string{"", "sk-llm-", "sk-llm-abc_def", "sk-llm-aaaaaaaaaaaa_", "sk-llm-aaaaaaaaaaaa",
		"sk-llm-AAAAAAAAAAAA_bbbb", "sk-llm-aaaaaaaaaaaa_b!bb", "sk-xyz-aaaaaaaaaaaa_bbbb",
		"sk-llm-aaaaaaaaaaaa_" + strings.Repeat("b", 129)} {
		if _, _, err := ParseKey(k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	_, full, _, _ := newKeyMaterial()
	for _, s := range []string{full, "", "sk-llm-", "sk-llm-aaaaaaaaaaaa_bbbb", "sk-llm-_", "sk-llm-\x00_\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := ParseKey(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error not ErrInvalidKey: %v", err)
			}
			return
		}
		if KeyPrefix+id+"_"+secret != s {
			t.Fatalf("parse of %q does not round trip", s)
		}
	})
}

func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{"postgres://u:p@h/db", "sqlite:/x/y.db", "sqlite:", "", "mysql://", "sqlite:a?b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, target, err := ParseDSN(s)
		if err != nil {
			if strings.Contains(err.Error(), "p@ss") && strings.Contains(s, ":p@ss@") {
				t.Fatalf("error leaks password: %v", err)
			}
			return
		}
		if (d != Postgres && d != SQLite) || target == "" {
			t.Fatalf("ParseDSN(%q) = %q %q", s, d, target)
		}
	})
}

func TestRedactDSN(t *testing.T) {
	_, _, err := ParseDSN("mysql://bob:hunter2@db/x")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error must not contain the password: %v", err)
	}
}

// fakeLookup counts store round trips and serves one key.
type fakeLookup struct {
	calls atomic.Int64
	key   Key
	err   error
}

func (f *fakeLookup) LookupKey(_ context.Context, id string) (Key, Tenant, error) {
	f.calls.Add(1)
	if f.err != nil {
		return Key{}, Tenant{}, f.err
	}
	if id != f.key.ID {
		return Key{}, Tenant{}, ErrNotFound
	}
	return f.key, Tenant{ID: f.key.TenantID, Name: "acme", Limits: billing.Limits{RPM: 1}}, nil
}

func TestAuthenticatorCacheAndRevoke(t *testing.T) {
	id, full, hash, _ := newKeyMaterial()
	exp := time.Unix(1000, 0)
	f := &fakeLookup{key: Key{ID: id, TenantID: "ten_x", SecretHash: hash, ExpiresAt: &exp}}
	now := time.Unix(500, 0)
	a := newAuthenticator(f, 500*time.Millisecond, func() time.Time { return now })
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := a.Authenticate(ctx, full); err != nil {
			t.Fatal(err)
		}
	}
	if f.calls.Load() != 1 {
		t.Fatalf("store hit %d times within TTL, want 1", f.calls.Load())
	}
	// Revoke in the store: still cached until the TTL passes, then seen.
	rev := time.Unix(500, 0)
	f.key.RevokedAt = &rev
	now = now.Add(499 * time.Millisecond)
	if _, err := a.Authenticate(ctx, full); err != nil {
		t.Fatalf("within TTL: %v", err)
	}
	now = now.Add(time.Millisecond)
	if _, err := a.Authenticate(ctx, full); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after TTL: want ErrRevoked, got %v", err)
	}
	// Expiry is checked against the clock on every call, cached or not.
	f.key.RevokedAt = nil
	now = time.Unix(1000, 0)
	if _, err := a.Authenticate(ctx, full); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: want ErrExpired, got %v", err)
	}
	// A store outage is not an invalid key.
	f.err = errors.New("db down")
	now = now.Add(time.Second)
	if _, err := a.Authenticate(ctx, full); err == nil || errors.Is(err, ErrInvalidKey) {
		t.Fatalf("store outage: got %v", err)
	}
}
