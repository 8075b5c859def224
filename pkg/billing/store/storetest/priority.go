package storetest

import (
	"testing"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// testKeyPriority: a key's queue priority is stored at creation, read by
// GetKey, LookupKey, ListKeys and the authenticator's principal, changed
// and unset by UpdateKey, and anything but high, normal, low or "" refused.
func testKeyPriority(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.CreateTenant(c, "acme", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	k, full, err := s.CreateKey(c, store.NewKey{Tenant: "acme", Priority: billing.PriorityHigh})
	if err != nil || k.Priority != billing.PriorityHigh {
		t.Fatalf("CreateKey(priority high) = %+v, %v", k, err)
	}
	if got, err := s.GetKey(c, k.ID); err != nil || got.Priority != billing.PriorityHigh {
		t.Fatalf("GetKey = %+v, %v; want priority high", got, err)
	}
	if got, _, err := s.LookupKey(c, k.ID); err != nil || got.Priority != billing.PriorityHigh {
		t.Fatalf("LookupKey = %+v, %v; want priority high", got, err)
	}
	if p, err := store.NewAuthenticator(s, 0).Authenticate(c, full); err != nil || p.Priority != billing.PriorityHigh {
		t.Fatalf("Authenticate = %+v, %v; want priority high", p, err)
	}
	low, unset := billing.PriorityLow, ""
	if got, err := s.UpdateKey(c, k.ID, store.KeyUpdate{Priority: &low}); err != nil || got.Priority != low {
		t.Fatalf("UpdateKey(priority low) = %+v, %v", got, err)
	}
	if ks, err := s.ListKeys(c, "acme"); err != nil || len(ks) != 1 || ks[0].Priority != low {
		t.Fatalf("ListKeys = %+v, %v; want one key with priority low", ks, err)
	}
	if got, err := s.UpdateKey(c, k.ID, store.KeyUpdate{Priority: &unset}); err != nil || got.Priority != "" {
		t.Fatalf("UpdateKey(priority unset) = %+v, %v", got, err)
	}
	urgent := "urgent"
	if _, err := s.UpdateKey(c, k.ID, store.KeyUpdate{Priority: &urgent}); err == nil {
		t.Error("UpdateKey accepted priority urgent")
	}
	if _, _, err := s.CreateKey(c, store.NewKey{Tenant: "acme", Priority: urgent}); err == nil {
		t.Error("CreateKey accepted priority urgent")
	}
}
