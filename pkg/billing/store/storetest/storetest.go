// Package storetest is the conformance suite every store.Store
// implementation must pass.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// Run runs the suite; open returns a fresh, empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Tenants", testTenants},
		{"TenantValidation", testTenantValidation},
		{"Keys", testKeys},
		{"KeyValidation", testKeyValidation},
		{"Revoke", testRevoke},
		{"Limits", testLimits},
		{"Authenticate", testAuthenticate},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ImportKey", testImportKey},
		{"Roles", testRoles},
		{"Suspend", testSuspend},
		{"UpdateKey", testUpdateKey},
		{"KeyPriority", testKeyPriority},
		{"BatchLimits", testBatchLimits},
		{"Audit", testAudit},
		{"AuditNoSecret", testAuditNoSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

// RunReplicas runs the tests that need two replicas: open returns two
// stores, each with its own connections, on one fresh database.
func RunReplicas(t *testing.T, open func(t *testing.T) (store.Store, store.Store)) {
	t.Run("SuspendAcrossReplicas", func(t *testing.T) {
		a, b := open(t)
		t.Cleanup(func() { a.Close(); b.Close() })
		testSuspendAcrossReplicas(t, a, b)
	})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func testTenants(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.Ping(c); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListTenants(c)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty store lists %v, %v", got, err)
	}
	a, err := s.CreateTenant(c, "acme", billing.Limits{RPM: 60})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.ID, "ten_") || a.Name != "acme" || a.Limits.RPM != 60 || a.CreatedAt.IsZero() {
		t.Fatalf("created tenant %+v", a)
	}
	if _, err := s.CreateTenant(c, "acme", billing.Limits{}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate tenant: want ErrConflict, got %v", err)
	}
	if _, err := s.CreateTenant(c, "beta", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"acme", a.ID} {
		g, err := s.GetTenant(c, ref)
		if err != nil || g != a {
			t.Fatalf("GetTenant(%q) = %+v, %v; want %+v", ref, g, err, a)
		}
	}
	if _, err := s.GetTenant(c, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown tenant: want ErrNotFound, got %v", err)
	}
	list, err := s.ListTenants(c)
	if err != nil || len(list) != 2 || list[0].Name != "acme" || list[1].Name != "beta" {
		t.Fatalf("ListTenants = %+v, %v", list, err)
	}
}

func testTenantValidation(t *testing.T, s store.Store) {
	c := ctx(t)
	for _, name := range []string{"", " padded", "tab\tname", "ten_abc", strings.Repeat("x", 65), "\xff"} {
		if _, err := s.CreateTenant(c, name, billing.Limits{}); err == nil {
			t.Errorf("CreateTenant(%q) accepted a bad name", name)
		}
	}
	if _, err := s.CreateTenant(c, "neg", billing.Limits{RPM: -1}); err == nil {
		t.Error("negative limit accepted")
	}
	// Hostile but valid names are stored verbatim (parameterised SQL).
	weird := "o'brien; DROP TABLE tenants;--"
	if _, err := s.CreateTenant(c, weird, billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	if g, err := s.GetTenant(c, weird); err != nil || g.Name != weird {
		t.Fatalf("weird name round trip: %+v %v", g, err)
	}
}

func testKeys(t *testing.T, s store.Store) {
	c := ctx(t)
	ten, err := s.CreateTenant(c, "acme", billing.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).UTC()
	k, secret, err := s.CreateKey(c, store.NewKey{Tenant: "acme", Name: "ci", Models: []string{"a", "b"}, ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	id, sec, err := store.ParseKey(secret)
	if err != nil || id != k.ID {
		t.Fatalf("created key %q does not parse to id %q: %v", secret, k.ID, err)
	}
	if k.TenantID != ten.ID || k.TenantName != "acme" || len(k.Models) != 2 || k.ExpiresAt == nil {
		t.Fatalf("created key %+v", k)
	}
	got, err := s.GetKey(c, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.SecretHash) != string(store.HashSecret(sec)) {
		t.Fatal("stored hash is not SHA-256 of the secret")
	}
	if strings.Contains(string(got.SecretHash), sec) {
		t.Fatal("secret stored in clear")
	}
	if !got.ExpiresAt.Equal(*k.ExpiresAt) || got.Models[1] != "b" || got.Name != "ci" {
		t.Fatalf("GetKey = %+v, want %+v", got, k)
	}
	k2, _, err := s.CreateKey(c, store.NewKey{Tenant: ten.ID})
	if err != nil {
		t.Fatal(err)
	}
	if k2.Models != nil {
		t.Fatalf("unscoped key has models %v", k2.Models)
	}
	if _, err := s.CreateTenant(c, "other", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateKey(c, store.NewKey{Tenant: "other"}); err != nil {
		t.Fatal(err)
	}
	mine, err := s.ListKeys(c, "acme")
	if err != nil || len(mine) != 2 {
		t.Fatalf("ListKeys(acme) = %d keys, %v", len(mine), err)
	}
	all, err := s.ListKeys(c, "")
	if err != nil || len(all) != 3 {
		t.Fatalf("ListKeys() = %d keys, %v", len(all), err)
	}
	if _, err := s.ListKeys(c, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ListKeys(unknown tenant): want ErrNotFound, got %v", err)
	}
	if _, _, err := s.CreateKey(c, store.NewKey{Tenant: "ghost"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CreateKey(unknown tenant): want ErrNotFound, got %v", err)
	}
	kk, tt, err := s.LookupKey(c, k.ID)
	if err != nil || kk.ID != k.ID || tt.ID != ten.ID || tt.Name != "acme" {
		t.Fatalf("LookupKey = %+v %+v %v", kk, tt, err)
	}
	if _, _, err := s.LookupKey(c, "aaaaaaaaaaaa"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LookupKey(unknown): want ErrNotFound, got %v", err)
	}
}

func testKeyValidation(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.CreateTenant(c, "acme", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	bad := []store.NewKey{
		{Tenant: "acme", ExpiresAt: &past},
		{Tenant: "acme", Models: []string{""}},
		{Tenant: "acme", Models: []string{" x"}},
		{Tenant: "acme", Limits: billing.Limits{TPM: -5}},
		{Tenant: "acme", Name: "\x00"},
	}
	for _, nk := range bad {
		if _, _, err := s.CreateKey(c, nk); err == nil {
			t.Errorf("CreateKey(%+v) accepted bad input", nk)
		}
	}
	if keys, _ := s.ListKeys(c, ""); len(keys) != 0 {
		t.Fatalf("rejected keys were stored: %d", len(keys))
	}
}

func testRevoke(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.CreateTenant(c, "acme", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	k, _, err := s.CreateKey(c, store.NewKey{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeKey(c, k.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetKey(c, k.ID)
	if err != nil || got.RevokedAt == nil {
		t.Fatalf("revoked key %+v, %v", got, err)
	}
	first := *got.RevokedAt
	if err := s.RevokeKey(c, k.ID); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if again, _ := s.GetKey(c, k.ID); !again.RevokedAt.Equal(first) {
		t.Fatal("second revoke moved the revocation time")
	}
	if err := s.RevokeKey(c, "aaaaaaaaaaaa"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke unknown: want ErrNotFound, got %v", err)
	}
}

func testLimits(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.CreateTenant(c, "acme", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	ten, err := s.SetTenantLimits(c, "acme", billing.Limits{RPM: 10, TPM: 1000, MaxConcurrency: 2})
	if err != nil || ten.Limits != (billing.Limits{RPM: 10, TPM: 1000, MaxConcurrency: 2}) {
		t.Fatalf("SetTenantLimits = %+v, %v", ten, err)
	}
	k, _, err := s.CreateKey(c, store.NewKey{Tenant: "acme", Limits: billing.Limits{RPM: 5}})
	if err != nil {
		t.Fatal(err)
	}
	k, err = s.SetKeyLimits(c, k.ID, billing.Limits{TPM: 77})
	if err != nil || k.Limits != (billing.Limits{TPM: 77}) {
		t.Fatalf("SetKeyLimits = %+v, %v", k.Limits, err)
	}
	if _, err := s.SetKeyLimits(c, "aaaaaaaaaaaa", billing.Limits{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetKeyLimits(unknown): %v", err)
	}
	if _, err := s.SetTenantLimits(c, "ghost", billing.Limits{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetTenantLimits(unknown): %v", err)
	}
	if _, err := s.SetTenantLimits(c, "acme", billing.Limits{MaxConcurrency: -1}); err == nil {
		t.Fatal("negative limit accepted")
	}
}

func testAuthenticate(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.CreateTenant(c, "acme", billing.Limits{TPM: 9}); err != nil {
		t.Fatal(err)
	}
	k, secret, err := s.CreateKey(c, store.NewKey{Tenant: "acme", Models: []string{"m"}, Limits: billing.Limits{RPM: 3}})
	if err != nil {
		t.Fatal(err)
	}
	a := store.NewAuthenticator(s, time.Nanosecond) // effectively uncached: see the store's state
	p, err := a.Authenticate(c, secret)
	if err != nil {
		t.Fatal(err)
	}
	if p.KeyID != k.ID || p.TenantName != "acme" || !p.Allows("m") || p.Allows("x") || p.KeyLimits.RPM != 3 || p.TenantLimits.TPM != 9 {
		t.Fatalf("principal %+v", p)
	}
	wrong := secret[:len(secret)-1] + "a"
	if wrong == secret {
		wrong = secret[:len(secret)-1] + "b"
	}
	for _, bad := range []string{"", "sk-llm-", wrong, "Bearer " + secret, strings.ToUpper(secret)} {
		if _, err := a.Authenticate(c, bad); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Authenticate(%.12q…): want ErrInvalidKey, got %v", bad, err)
		}
	}
	if err := s.RevokeKey(c, k.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	if _, err := a.Authenticate(c, secret); !errors.Is(err, store.ErrRevoked) {
		t.Fatalf("revoked key: want ErrRevoked, got %v", err)
	}
}

func testConcurrentCreate(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.CreateTenant(c, "acme", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); _, _, err := s.CreateKey(c, store.NewKey{Tenant: "acme"}); errs <- err }()
		go func() { defer wg.Done(); _, err := s.CreateTenant(c, "race", billing.Limits{}); errs <- err }()
	}
	wg.Wait()
	close(errs)
	created, conflicts := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			created++
		case errors.Is(err, store.ErrConflict):
			conflicts++
		default:
			t.Errorf("concurrent create: %v", err)
		}
	}
	if created != 21 || conflicts != 19 {
		t.Fatalf("created %d, conflicts %d: want 21 (20 keys + 1 tenant) and 19", created, conflicts)
	}
}

func testImportKey(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.CreateTenant(c, "admin", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	preset := "sk-llm-abcdefghijkl_" + strings.Repeat("q", 52)
	k, full, err := s.CreateKey(c, store.NewKey{Tenant: "admin", Import: preset})
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != "abcdefghijkl" || full != preset {
		t.Fatalf("imported key %+v %q", k, full)
	}
	if _, err := store.NewAuthenticator(s, time.Nanosecond).Authenticate(c, preset); err != nil {
		t.Fatalf("imported key does not authenticate: %v", err)
	}
	if _, _, err := s.CreateKey(c, store.NewKey{Tenant: "admin", Import: preset}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second import: want ErrConflict, got %v", err)
	}
	for _, bad := range []string{"sk-llm-short_x", "not-a-key", "sk-llm-ABCDEFGHIJKL_qqqq"} {
		if _, _, err := s.CreateKey(c, store.NewKey{Tenant: "admin", Import: bad}); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("import %q: want ErrInvalidKey, got %v", bad, err)
		}
	}
	if keys, _ := s.ListKeys(c, "admin"); len(keys) != 1 {
		t.Fatalf("%d keys stored, want 1", len(keys))
	}
}

func testRoles(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.CreateTenant(c, "acme", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	user, userSecret, err := s.CreateKey(c, store.NewKey{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	admin, adminSecret, err := s.CreateKey(c, store.NewKey{Tenant: "acme", Role: billing.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if user.Role != billing.RoleUser || admin.Role != billing.RoleAdmin {
		t.Fatalf("created roles %q and %q, want user (the default) and admin", user.Role, admin.Role)
	}
	for _, bad := range []billing.Role{"root", "Admin", " admin"} {
		if _, _, err := s.CreateKey(c, store.NewKey{Tenant: "acme", Role: bad}); err == nil || !strings.Contains(err.Error(), "role") {
			t.Errorf("CreateKey(role %q): want an error naming the role, got %v", bad, err)
		}
	}
	keys, err := s.ListKeys(c, "acme")
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListKeys = %d keys, %v", len(keys), err)
	}
	for _, k := range keys {
		want := map[string]billing.Role{user.ID: billing.RoleUser, admin.ID: billing.RoleAdmin}[k.ID]
		if k.Role != want {
			t.Errorf("listed key %s has role %q, want %q", k.ID, k.Role, want)
		}
	}
	a := store.NewAuthenticator(s, time.Nanosecond)
	for _, tc := range []struct {
		secret string
		admin  bool
	}{{userSecret, false}, {adminSecret, true}} {
		p, err := a.Authenticate(c, tc.secret)
		if err != nil {
			t.Fatal(err)
		}
		if p.IsAdmin() != tc.admin {
			t.Errorf("principal %s: IsAdmin() = %v, want %v (role %q)", p.KeyID, p.IsAdmin(), tc.admin, p.Role)
		}
	}
}

func testSuspend(t *testing.T, s store.Store) {
	c := ctx(t)
	acme, err := s.CreateTenant(c, "acme", billing.Limits{RPM: 7})
	if err != nil {
		t.Fatal(err)
	}
	if acme.SuspendedAt != nil {
		t.Fatal("a new tenant is suspended")
	}
	if _, err := s.CreateTenant(c, "other", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := s.CreateKey(c, store.NewKey{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	_, otherSecret, err := s.CreateKey(c, store.NewKey{Tenant: "other"})
	if err != nil {
		t.Fatal(err)
	}
	a := store.NewAuthenticator(s, time.Nanosecond) // effectively uncached: see the store's state
	auth := func(key string) error {
		time.Sleep(time.Millisecond) // past the nanosecond TTL, whatever the clock's resolution
		_, err := a.Authenticate(c, key)
		return err
	}
	if err := auth(secret); err != nil {
		t.Fatal(err)
	}
	sus, err := s.SuspendTenant(c, "acme")
	if err != nil || sus.SuspendedAt == nil || sus.Limits.RPM != 7 {
		t.Fatalf("SuspendTenant = %+v, %v", sus, err)
	}
	// ErrSuspended also matches ErrInvalidKey: a caller unaware of it refuses the key.
	err = auth(secret)
	if !errors.Is(err, store.ErrSuspended) || !errors.Is(err, store.ErrInvalidKey) || errors.Is(err, store.ErrRevoked) {
		t.Fatalf("suspended tenant's key: want ErrSuspended (matching ErrInvalidKey), got %v", err)
	}
	if err := auth(otherSecret); err != nil {
		t.Fatalf("another tenant's key after suspending acme: %v", err)
	}
	again, err := s.SuspendTenant(c, acme.ID)
	if err != nil || again.SuspendedAt == nil || !again.SuspendedAt.Equal(*sus.SuspendedAt) {
		t.Fatalf("second suspend = %+v, %v; want the first time kept", again, err)
	}
	if g, err := s.GetTenant(c, "acme"); err != nil || g.SuspendedAt == nil {
		t.Fatalf("GetTenant of a suspended tenant = %+v, %v", g, err)
	}
	if keys, err := s.ListKeys(c, "acme"); err != nil || len(keys) != 1 {
		t.Fatalf("a suspended tenant's keys: %d, %v; want them kept", len(keys), err)
	}
	res, err := s.ResumeTenant(c, "acme")
	if err != nil || res.SuspendedAt != nil {
		t.Fatalf("ResumeTenant = %+v, %v", res, err)
	}
	if err := auth(secret); err != nil {
		t.Fatalf("resumed tenant's key: %v", err)
	}
	if _, err := s.ResumeTenant(c, "acme"); err != nil {
		t.Fatalf("resuming an active tenant: %v", err)
	}
	for _, f := range []func(context.Context, string) (store.Tenant, error){s.SuspendTenant, s.ResumeTenant} {
		if _, err := f(c, "ghost"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("suspend/resume unknown tenant: want ErrNotFound, got %v", err)
		}
	}
}

// A suspension written through one replica reaches the other's
// authenticator once its cache TTL has passed, and so does the resume.
func testSuspendAcrossReplicas(t *testing.T, a, b store.Store) {
	c := ctx(t)
	if _, err := a.CreateTenant(c, "acme", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := a.CreateKey(c, store.NewKey{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 500 * time.Millisecond
	now := time.Now()
	clock := store.AuthClock(func() time.Time { return now })
	authA, authB := store.NewAuthenticator(a, ttl, clock), store.NewAuthenticator(b, ttl, clock)
	expect := func(step string, want error) {
		t.Helper()
		for name, au := range map[string]*store.Authenticator{"replica a": authA, "replica b": authB} {
			_, err := au.Authenticate(c, secret)
			if want == nil && err != nil || want != nil && !errors.Is(err, want) {
				t.Fatalf("%s, %s: Authenticate = %v, want %v", step, name, err, want)
			}
		}
	}
	expect("active", nil) // both caches hold the key now
	if _, err := a.SuspendTenant(c, "acme"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(ttl)
	expect("suspended on a, one TTL later", store.ErrSuspended)
	if _, err := b.ResumeTenant(c, "acme"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(ttl)
	expect("resumed on b, one TTL later", nil)
}

func testUpdateKey(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.CreateTenant(c, "acme", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	k, _, err := s.CreateKey(c, store.NewKey{Tenant: "acme", Models: []string{"a"}, Limits: billing.Limits{RPM: 5}})
	if err != nil {
		t.Fatal(err)
	}
	models := []string{"b", "c"}
	got, err := s.UpdateKey(c, k.ID, store.KeyUpdate{Models: &models})
	if err != nil || strings.Join(got.Models, ",") != "b,c" || got.Limits.RPM != 5 {
		t.Fatalf("UpdateKey(models) = %+v, %v; want models b,c and the limits unchanged", got, err)
	}
	lim := billing.Limits{TPM: 100}
	got, err = s.UpdateKey(c, k.ID, store.KeyUpdate{Limits: &lim})
	if err != nil || got.Limits != lim || strings.Join(got.Models, ",") != "b,c" {
		t.Fatalf("UpdateKey(limits) = %+v, %v; want limits %+v and the models unchanged", got, err, lim)
	}
	all := []string{}
	if got, err = s.UpdateKey(c, k.ID, store.KeyUpdate{Models: &all}); err != nil || got.Models != nil {
		t.Fatalf("UpdateKey(no models) = %+v, %v; want every model", got, err)
	}
	if got, err = s.UpdateKey(c, k.ID, store.KeyUpdate{}); err != nil || got.ID != k.ID {
		t.Fatalf("empty update = %+v, %v", got, err)
	}
	bad := []string{" x"}
	neg := billing.Limits{RPM: -1}
	for _, u := range []store.KeyUpdate{{Models: &bad}, {Limits: &neg}} {
		if _, err := s.UpdateKey(c, k.ID, u); err == nil {
			t.Errorf("UpdateKey(%+v) accepted bad input", u)
		}
	}
	for _, u := range []store.KeyUpdate{{}, {Limits: &lim}} {
		if _, err := s.UpdateKey(c, "aaaaaaaaaaaa", u); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdateKey(unknown, %+v): want ErrNotFound, got %v", u, err)
		}
	}
	if final, _ := s.GetKey(c, k.ID); final.Limits != lim || final.Models != nil {
		t.Fatalf("rejected updates changed the key: %+v", final)
	}
}

func testAudit(t *testing.T, s store.Store) {
	c := ctx(t)
	if got, err := s.ListAudit(c, store.AuditFilter{}); err != nil || len(got) != 0 {
		t.Fatalf("empty audit log lists %v, %v", got, err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	var recs []store.AuditRecord
	for i := range 5 {
		r, err := s.AppendAudit(c, store.AuditRecord{
			Time: t0.Add(time.Duration(i) * time.Minute), Actor: "keyid" + fmt.Sprint(i), Action: store.AuditTenantCreate,
			Target: fmt.Sprintf("t%d", i), RequestID: fmt.Sprintf("req-%d", i),
			Details: json.RawMessage(fmt.Sprintf(`{"n": %d, "z": "a", "a": "z"}`, i)),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) > 0 && r.ID <= recs[len(recs)-1].ID {
			t.Fatalf("record %d has id %d, not above the previous %d", i, r.ID, recs[len(recs)-1].ID)
		}
		recs = append(recs, r)
	}
	all, err := s.ListAudit(c, store.AuditFilter{})
	if err != nil || len(all) != 5 {
		t.Fatalf("ListAudit = %d records, %v", len(all), err)
	}
	for i, got := range all {
		want := recs[4-i] // newest first
		if got.ID != want.ID || !got.Time.Equal(want.Time) || got.Actor != want.Actor || got.Action != want.Action ||
			got.Target != want.Target || got.RequestID != want.RequestID || string(got.Details) != string(want.Details) {
			t.Fatalf("record %d = %+v (details %s), want %+v (details %s)", i, got, got.Details, want, want.Details)
		}
	}
	// Cursor pagination: pages of two, each starting below the last id seen.
	var paged []int64
	for before := int64(0); ; {
		page, err := s.ListAudit(c, store.AuditFilter{Limit: 2, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 2 {
			t.Fatalf("page of %d records with limit 2", len(page))
		}
		for _, r := range page {
			paged = append(paged, r.ID)
		}
		before = page[len(page)-1].ID
	}
	if fmt.Sprint(paged) != fmt.Sprint([]int64{recs[4].ID, recs[3].ID, recs[2].ID, recs[1].ID, recs[0].ID}) {
		t.Fatalf("paged ids %v, want every record once, newest first", paged)
	}
	// Since inclusive, until exclusive.
	win, err := s.ListAudit(c, store.AuditFilter{Since: recs[1].Time, Until: recs[3].Time})
	if err != nil || len(win) != 2 || win[0].ID != recs[2].ID || win[1].ID != recs[1].ID {
		t.Fatalf("ListAudit(since record 1, until record 3) = %+v, %v", win, err)
	}
	if _, err := s.ListAudit(c, store.AuditFilter{Since: t0, Until: t0}); err == nil {
		t.Error("since not before until accepted")
	}
	// Time left zero is the store's now; details left empty are {}.
	now, err := s.AppendAudit(c, store.AuditRecord{Actor: store.AuditActorCLI, Action: store.AuditKeyRevoke})
	if err != nil || now.Time.IsZero() || string(now.Details) != "{}" {
		t.Fatalf("defaults: %+v (details %s), %v", now, now.Details, err)
	}
	bad := []store.AuditRecord{
		{Action: "x"},
		{Actor: "cli"},
		{Actor: "cli", Action: "x", Details: json.RawMessage(`[1]`)},
		{Actor: "cli", Action: "x", Details: json.RawMessage(`{"a":`)},
	}
	for _, r := range bad {
		if _, err := s.AppendAudit(c, r); err == nil {
			t.Errorf("AppendAudit(%+v) accepted a bad record", r)
		}
	}
	if got, _ := s.ListAudit(c, store.AuditFilter{}); len(got) != 6 {
		t.Fatalf("%d records after refused appends, want 6", len(got))
	}
}

// A key's secret can never reach the audit log, whichever field carries it.
func testAuditNoSecret(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.CreateTenant(c, "acme", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	k, secret, err := s.CreateKey(c, store.NewKey{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	quoted, _ := json.Marshal(secret)
	for _, r := range []store.AuditRecord{
		{Actor: secret, Action: store.AuditKeyCreate},
		{Actor: "cli", Action: store.AuditKeyCreate, Target: secret},
		{Actor: "cli", Action: store.AuditKeyCreate, RequestID: secret},
		{Actor: "cli", Action: store.AuditKeyCreate, Details: json.RawMessage(`{"key": ` + string(quoted) + `}`)},
	} {
		if _, err := s.AppendAudit(c, r); err == nil || !strings.Contains(err.Error(), "API key") {
			t.Errorf("AppendAudit with the secret in it: want an error naming the API key, got %v", err)
		}
	}
	if _, err := s.AppendAudit(c, store.AuditRecord{Actor: "cli", Action: store.AuditKeyCreate, Target: k.ID,
		Details: json.RawMessage(`{"tenant": "acme"}`)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListAudit(c, store.AuditFilter{})
	if err != nil || len(got) != 1 || got[0].Target != k.ID {
		t.Fatalf("audit log = %+v, %v; want only the key.create without the secret", got, err)
	}
	out, _ := json.Marshal(got)
	_, sec, _ := store.ParseKey(secret)
	if strings.Contains(string(out), sec) {
		t.Fatal("the key's secret reached the audit log")
	}
}
