package serve_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
)

// The bootstrap key, generated or imported from LLMCTL_ADMIN_KEY, is an
// admin key; a later start on a store with tenants creates nothing.
func TestBootstrapAdminKeyRole(t *testing.T) {
	ctx := context.Background()
	preset := "sk-llm-abcdefghijkl_" + strings.Repeat("q", 52)
	for _, tc := range []struct{ name, preset string }{{"generated", ""}, {"imported", preset}} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			key, err := serve.EnsureAdmin(ctx, st, tc.preset)
			if err != nil {
				t.Fatal(err)
			}
			if tc.preset != "" {
				if key != "" {
					t.Fatal("an imported key was returned for printing")
				}
				key = tc.preset
			}
			p, err := store.NewAuthenticator(st, time.Nanosecond).Authenticate(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if p.Role != billing.RoleAdmin || !p.IsAdmin() || p.TenantName != serve.AdminTenant {
				t.Fatalf("bootstrap principal %+v: want the admin tenant with role admin", p)
			}
			again, err := serve.EnsureAdmin(ctx, st, tc.preset)
			if err != nil || again != "" {
				t.Fatalf("second EnsureAdmin = %q, %v", again, err)
			}
			if keys, _ := st.ListKeys(ctx, serve.AdminTenant); len(keys) != 1 {
				t.Fatalf("%d admin keys after two starts, want 1", len(keys))
			}
		})
	}
}
