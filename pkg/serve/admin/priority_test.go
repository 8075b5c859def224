package admin_test

import (
	"testing"

	"github.com/llmctl/llmctl/pkg/serve"
)

// TestAdminKeyPriority: a key's queue priority is set at creation, shown
// on the key, changed and unset by PATCH; anything else is a 400 naming
// the field. On SQLite and PostgreSQL.
func TestAdminKeyPriority(t *testing.T) {
	for _, rs := range realStores {
		t.Run(rs.name, func(t *testing.T) {
			f := newFixture(t, rs.dsn(t), serve.AdminAPIOnAPI)
			api, ak := f.api.URL, f.adminKey
			want(t, do(t, api, "POST", "/admin/v1/tenants", ak, `{"name":"acme"}`), 201, "create tenant")
			type keyPriority struct{ ID, Priority string }
			var k keyPriority
			r := do(t, api, "POST", "/admin/v1/tenants/acme/keys", ak, `{"priority":"high"}`)
			want(t, r, 201, "create key with priority")
			if r.decode(t, &k); k.Priority != "high" {
				t.Fatalf("created key: %s", r.body)
			}
			for _, tc := range []struct{ body, want string }{{`{"priority":"low"}`, "low"}, {`{"priority":""}`, ""}} {
				r = do(t, api, "PATCH", "/admin/v1/keys/"+k.ID, ak, tc.body)
				want(t, r, 200, "patch "+tc.body)
				var got keyPriority
				if r.decode(t, &got); got.Priority != tc.want {
					t.Fatalf("PATCH %s: %s", tc.body, r.body)
				}
			}
			wantErr(t, do(t, api, "PATCH", "/admin/v1/keys/"+k.ID, ak, `{"priority":"urgent"}`), 400, "priority",
				`"priority" must be "high", "normal" or "low" (got "urgent")`)
			wantErr(t, do(t, api, "POST", "/admin/v1/tenants/acme/keys", ak, `{"priority":1}`), 400, "priority",
				`"priority" must be a string`)
		})
	}
}
