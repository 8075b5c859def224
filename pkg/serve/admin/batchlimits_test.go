package admin_test

import (
	"context"
	"testing"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve"
)

// TestAdminBatchLimits: a tenant's and a key's batch-only limits
// (batch_rpm, batch_tpm) are set at creation and by PATCH (only the fields
// sent change), shown on the tenant and the key as the document describes,
// and stored; a bad value or an unknown field is a 400 naming it. On SQLite
// and PostgreSQL.
func TestAdminBatchLimits(t *testing.T) {
	for _, rs := range realStores {
		t.Run(rs.name, func(t *testing.T) {
			f := newFixture(t, rs.dsn(t), serve.AdminAPIOnAPI)
			ctx, api, ak := context.Background(), f.api.URL, f.adminKey
			v := validator{t: t, doc: loadOpenAPI(t, api, ak), api: api}
			type limitsOut struct {
				ID             string
				RPM, TPM       int64
				BatchRPM       int64 `json:"batch_rpm"`
				BatchTPM       int64 `json:"batch_tpm"`
				MaxConcurrency int64 `json:"max_concurrency"`
			}
			var ten, k limitsOut
			r := v.call("POST", "/admin/v1/tenants", "/admin/v1/tenants", ak, `{"name":"acme","rpm":100,"batch_rpm":50}`, true)
			want(t, r, 201, "create tenant with a batch rpm")
			if r.decode(t, &ten); ten.RPM != 100 || ten.BatchRPM != 50 || ten.BatchTPM != 0 {
				t.Fatalf("created tenant: %s", r.body)
			}
			r = v.call("PATCH", "/admin/v1/tenants/{name}", "/admin/v1/tenants/acme", ak, `{"batch_tpm":90000}`, true)
			want(t, r, 200, "patch the tenant's batch tpm")
			if r.decode(t, &ten); ten.RPM != 100 || ten.BatchRPM != 50 || ten.BatchTPM != 90000 {
				t.Fatalf("patched tenant: %s", r.body)
			}

			r = v.call("POST", "/admin/v1/tenants/{name}/keys", "/admin/v1/tenants/acme/keys", ak,
				`{"rpm":10,"batch_rpm":3,"batch_tpm":4000}`, true)
			want(t, r, 201, "create key with batch limits")
			if r.decode(t, &k); k.RPM != 10 || k.BatchRPM != 3 || k.BatchTPM != 4000 {
				t.Fatalf("created key: %s", r.body)
			}
			r = v.call("PATCH", "/admin/v1/keys/{id}", "/admin/v1/keys/"+k.ID, ak, `{"batch_rpm":7}`, true)
			want(t, r, 200, "patch the key's batch rpm")
			if r.decode(t, &k); k.RPM != 10 || k.BatchRPM != 7 || k.BatchTPM != 4000 {
				t.Fatalf("patched key: %s", r.body)
			}
			want(t, v.call("GET", "/admin/v1/keys/{id}", "/admin/v1/keys/"+k.ID, ak, "", true), 200, "get key")
			stored, err := f.st.GetKey(ctx, k.ID)
			if want := (billing.Limits{RPM: 10, BatchRPM: 7, BatchTPM: 4000}); err != nil || stored.Limits != want {
				t.Fatalf("stored key limits %+v, %v; want %+v", stored.Limits, err, want)
			}
			st, err := f.st.GetTenant(ctx, "acme")
			if want := (billing.Limits{RPM: 100, BatchRPM: 50, BatchTPM: 90000}); err != nil || st.Limits != want {
				t.Fatalf("stored tenant limits %+v, %v; want %+v", st.Limits, err, want)
			}

			for _, tc := range []struct{ method, path, body, param, msg string }{
				{"PATCH", "/admin/v1/keys/" + k.ID, `{"batch_rpm":-1}`, "batch_rpm", `"batch_rpm" must not be negative`},
				{"PATCH", "/admin/v1/keys/" + k.ID, `{"batch_tpm":"lots"}`, "batch_tpm", `"batch_tpm" must be a whole number`},
				{"PATCH", "/admin/v1/keys/" + k.ID, `{"batch_concurrency":2}`, "batch_concurrency", `unknown field "batch_concurrency"`},
				{"PATCH", "/admin/v1/tenants/acme", `{"batch_tpm":1.5}`, "batch_tpm", `"batch_tpm" must be a whole number`},
				{"PATCH", "/admin/v1/tenants/acme", `{"batchRpm":1}`, "batchRpm", `unknown field "batchRpm"`},
				{"POST", "/admin/v1/tenants/acme/keys", `{"batch_rpm":-5}`, "batch_rpm", `"batch_rpm" must not be negative`},
				{"POST", "/admin/v1/tenants", `{"name":"b","batch_tpm":99999999999999999999}`, "batch_tpm", `"batch_tpm" is too large`},
			} {
				wantErr(t, do(t, api, tc.method, tc.path, ak, tc.body), 400, tc.param, tc.msg)
			}
			if again, _ := f.st.GetKey(ctx, k.ID); again.Limits != stored.Limits {
				t.Fatalf("a refused PATCH changed the key's limits to %+v", again.Limits)
			}
		})
	}
}
