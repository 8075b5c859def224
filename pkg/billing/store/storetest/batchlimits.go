package storetest

import (
	"errors"
	"testing"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// testBatchLimits: a key's and a tenant's batch-only limits (batch RPM and
// TPM) are stored at creation, read by GetKey, LookupKey, ListKeys and the
// authenticator's principal, replaced by SetKeyLimits/SetTenantLimits and
// UpdateKey apart from nothing else, and refused when negative.
func testBatchLimits(t *testing.T, s store.Store) {
	c := ctx(t)
	tl := billing.Limits{RPM: 100, BatchRPM: 7, BatchTPM: 7000}
	if ten, err := s.CreateTenant(c, "acme", tl); err != nil || ten.Limits != tl {
		t.Fatalf("CreateTenant = %+v, %v", ten, err)
	}
	if ten, err := s.GetTenant(c, "acme"); err != nil || ten.Limits != tl {
		t.Fatalf("GetTenant = %+v, %v; want limits %+v", ten, err, tl)
	}
	kl := billing.Limits{RPM: 5, BatchRPM: 2, BatchTPM: 300}
	k, full, err := s.CreateKey(c, store.NewKey{Tenant: "acme", Limits: kl})
	if err != nil || k.Limits != kl {
		t.Fatalf("CreateKey = %+v, %v", k, err)
	}
	if got, err := s.GetKey(c, k.ID); err != nil || got.Limits != kl {
		t.Fatalf("GetKey = %+v, %v; want limits %+v", got, err, kl)
	}
	if got, ten, err := s.LookupKey(c, k.ID); err != nil || got.Limits != kl || ten.Limits != tl {
		t.Fatalf("LookupKey = %+v, %+v, %v; want limits %+v and %+v", got.Limits, ten.Limits, err, kl, tl)
	}
	if ks, err := s.ListKeys(c, "acme"); err != nil || len(ks) != 1 || ks[0].Limits != kl {
		t.Fatalf("ListKeys = %+v, %v", ks, err)
	}
	if p, err := store.NewAuthenticator(s, 0).Authenticate(c, full); err != nil || p.KeyLimits != kl || p.TenantLimits != tl {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}

	kl = billing.Limits{RPM: 5, BatchRPM: 9}
	if got, err := s.SetKeyLimits(c, k.ID, kl); err != nil || got.Limits != kl {
		t.Fatalf("SetKeyLimits = %+v, %v; want %+v", got.Limits, err, kl)
	}
	kl = billing.Limits{BatchTPM: 11}
	if got, err := s.UpdateKey(c, k.ID, store.KeyUpdate{Limits: &kl}); err != nil || got.Limits != kl {
		t.Fatalf("UpdateKey = %+v, %v; want %+v", got.Limits, err, kl)
	}
	tl = billing.Limits{BatchTPM: 1}
	if ten, err := s.SetTenantLimits(c, "acme", tl); err != nil || ten.Limits != tl {
		t.Fatalf("SetTenantLimits = %+v, %v; want %+v", ten.Limits, err, tl)
	}
	if ts, err := s.ListTenants(c); err != nil || len(ts) != 1 || ts[0].Limits != tl {
		t.Fatalf("ListTenants = %+v, %v", ts, err)
	}
	// What a running batch's lines read: the limits stored now, by key id.
	if gotK, gotT, err := store.NewAuthenticator(s, 0).StoredLimits(c, k.ID); err != nil || gotK != kl || gotT != tl {
		t.Fatalf("StoredLimits = %+v, %+v, %v; want %+v and %+v", gotK, gotT, err, kl, tl)
	}
	if _, _, err := store.NewAuthenticator(s, 0).StoredLimits(c, "aaaaaaaaaaaa"); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("StoredLimits(unknown key): %v, want ErrInvalidKey", err)
	}
	for _, bad := range []billing.Limits{{BatchRPM: -1}, {BatchTPM: -1}} {
		if _, err := s.SetKeyLimits(c, k.ID, bad); err == nil {
			t.Errorf("SetKeyLimits(%+v) accepted a negative limit", bad)
		}
		if _, err := s.SetTenantLimits(c, "acme", bad); err == nil {
			t.Errorf("SetTenantLimits(%+v) accepted a negative limit", bad)
		}
		if _, _, err := s.CreateKey(c, store.NewKey{Tenant: "acme", Limits: bad}); err == nil {
			t.Errorf("CreateKey(%+v) accepted a negative limit", bad)
		}
	}
}
