package serve

import (
	"context"
	"errors"
	"fmt"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// AdminTenant is the tenant created on an empty store.
const AdminTenant = "admin"

// adminStore is what bootstrapping needs from the store.
type adminStore interface {
	ListTenants(ctx context.Context) ([]store.Tenant, error)
	CreateTenant(ctx context.Context, name string, limits billing.Limits) (store.Tenant, error)
	CreateKey(ctx context.Context, k store.NewKey) (store.Key, string, error)
}

// EnsureAdmin creates the admin tenant and an admin-role key for it when the
// store has no tenant at all, and returns that key (the only time it is visible). It
// returns "" when the store already had tenants, or when another replica
// won the race to create the admin tenant.
//
// With preset (a full key, e.g. LLMCTL_ADMIN_KEY from a Kubernetes Secret)
// the admin tenant is ensured and that key imported instead, on every start
// and idempotently, so replicas racing each other and restarts are harmless;
// nothing is returned because the operator already holds the key.
func EnsureAdmin(ctx context.Context, st adminStore, preset string) (string, error) {
	if preset != "" {
		if _, err := st.CreateTenant(ctx, AdminTenant, billing.Limits{}); err != nil && !errors.Is(err, store.ErrConflict) {
			return "", fmt.Errorf("bootstrap: create tenant %s: %w", AdminTenant, err)
		}
		// An existing import keeps its record: a store that had it before
		// roles existed made it admin in migration 00200.
		_, _, err := st.CreateKey(ctx, store.NewKey{Tenant: AdminTenant, Name: "bootstrap", Role: billing.RoleAdmin, Import: preset})
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return "", fmt.Errorf("bootstrap: import admin key: %w", err)
		}
		return "", nil
	}
	ts, err := st.ListTenants(ctx)
	if err != nil {
		return "", fmt.Errorf("bootstrap: list tenants: %w", err)
	}
	if len(ts) > 0 {
		return "", nil
	}
	if _, err := st.CreateTenant(ctx, AdminTenant, billing.Limits{}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return "", nil
		}
		return "", fmt.Errorf("bootstrap: create tenant %s: %w", AdminTenant, err)
	}
	_, key, err := st.CreateKey(ctx, store.NewKey{Tenant: AdminTenant, Name: "bootstrap", Role: billing.RoleAdmin})
	if err != nil {
		return "", fmt.Errorf("bootstrap: create admin key: %w", err)
	}
	return key, nil
}
