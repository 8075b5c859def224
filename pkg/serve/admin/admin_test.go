package admin_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/limits"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/admin"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// realStores names real databases; dsn makes a fresh, empty one.
var realStores = []struct {
	name string
	dsn  func(tb testing.TB) string
}{
	{"sqlite", func(tb testing.TB) string { return "sqlite:" + filepath.Join(tb.TempDir(), "llmctl.db") }},
	{"postgres", func(tb testing.TB) string { return testenv.PG(tb).NewDatabase(tb) }},
}

// clock is the authenticator's and handler's time: tests step it across the
// key cache TTL instead of sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const (
	keyTTL  = 500 * time.Millisecond
	maxBody = 4096
)

// fixture is the real gateway over a real store, authenticator and limiter,
// with the admin API where mode says.
type fixture struct {
	st       store.Store
	api, adm *httptest.Server
	adminKey string
	clock    *clock
}

func newFixture(t *testing.T, dsn, mode string) *fixture {
	t.Helper()
	return newLedgerFixture(t, dsn, mode, nil)
}

// newLedgerFixture is newFixture with lg (nil: none) behind the admin API's
// credits and balance and /v1/me.
func newLedgerFixture(t *testing.T, dsn, mode string, lg *ledger.Ledger) *fixture {
	t.Helper()
	ctx := context.Background()
	st := openStore(t, dsn)
	key, err := serve.EnsureAdmin(ctx, st, "")
	if err != nil || key == "" {
		t.Fatalf("bootstrap admin key: %q %v", key, err)
	}
	f := newLedgerReplica(t, st, mode, lg)
	f.adminKey = key
	return f
}

// newReplica is one more gateway (own authenticator, key cache, limiter and
// clock) over st, as a second replica sharing the database is.
func newReplica(t *testing.T, st store.Store, mode string) *fixture {
	t.Helper()
	return newLedgerReplica(t, st, mode, nil)
}

func newLedgerReplica(t *testing.T, st store.Store, mode string, lg *ledger.Ledger) *fixture {
	t.Helper()
	clk := &clock{t: time.Now()}
	lim, err := limits.NewMemory(limits.Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lim.Close() })
	aopts := admin.Options{Store: st, MaxBodyBytes: maxBody, Now: clk.Now}
	sopts := serve.Options{Auth: store.NewAuthenticator(st, keyTTL, store.AuthClock(clk.Now)),
		Admitter: lim, AdminAPI: mode, MaxBodyBytes: maxBody}
	if lg != nil {
		lv := admin.FromLedger(lg)
		aopts.Ledger, sopts.Ledger = lv, lv
		aopts.Vouchers, sopts.Vouchers = lg.Store(), lg.Store()
		aopts.Alerts, _ = ledger.OutboxOf(lg.Store())
		prices := lg.Prices()
		aopts.Prices = &prices
	}
	h, err := admin.New(aopts)
	if err != nil {
		t.Fatal(err)
	}
	sopts.Admin = h
	gw, err := serve.New(sopts)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, api: httptest.NewServer(gw), adm: httptest.NewServer(gw.AdminHandler()), clock: clk}
	t.Cleanup(f.api.Close)
	t.Cleanup(f.adm.Close)
	return f
}

func openStore(t *testing.T, dsn string) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// errBody is OpenAI's error shape.
type errBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func (r reply) err(t *testing.T) errBody {
	t.Helper()
	var e errBody
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("status %d: not an OpenAI error: %s (%v)", r.status, r.body, err)
	}
	return e
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("status %d: %s: %v", r.status, r.body, err)
	}
}

func do(t *testing.T, base, method, path, key, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func want(t *testing.T, r reply, status int, what string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.body)
	}
}

// wantErr checks an error answer's status, param and message.
func wantErr(t *testing.T, r reply, status int, param, msg string) {
	t.Helper()
	want(t, r, status, msg)
	e := r.err(t)
	gotParam := ""
	if e.Error.Param != nil {
		gotParam = *e.Error.Param
	}
	if gotParam != param || !strings.Contains(e.Error.Message, msg) {
		t.Fatalf("error param %q message %q; want param %q and %q in the message", gotParam, e.Error.Message, param, msg)
	}
}

type tenantOut struct {
	ID, Name, Status string
	RPM, TPM         int64
}

type keyOut struct {
	ID, Key, Role, Status, Tenant string
	Models                        []string
	RPM                           int64
	ExpiresAt                     *time.Time `json:"expires_at"`
}

type auditOut struct {
	Data []struct {
		ID        int64
		Actor     string
		Action    string
		Target    string
		RequestID string `json:"request_id"`
	}
}

// The path end to end on each database: tenants and keys made over
// HTTP work on the model API, user keys are refused on the admin API, a
// revoke and a suspension take effect within the key cache TTL, and the
// audit log holds every write by the admin key and no secret.
func TestAdminTenantsAndKeys(t *testing.T) {
	for _, rs := range realStores {
		t.Run(rs.name, func(t *testing.T) {
			f := newFixture(t, rs.dsn(t), serve.AdminAPIOnAPI)
			api, ak := f.api.URL, f.adminKey
			adminID, _, _ := store.ParseKey(ak)
			var writes []string // request ids of the writes, in order

			wantErr(t, do(t, api, "GET", "/admin/v1/tenants", "", ""), 401, "", "missing API key")

			r := do(t, api, "POST", "/admin/v1/tenants", ak, `{"name":"acme","rpm":100,"max_concurrency":4}`)
			want(t, r, 201, "create tenant")
			writes = append(writes, r.header.Get("X-Request-Id"))
			var ten tenantOut
			r.decode(t, &ten)
			if ten.Name != "acme" || ten.RPM != 100 || ten.Status != "active" || !strings.HasPrefix(ten.ID, "ten_") {
				t.Fatalf("created tenant: %s", r.body)
			}
			wantErr(t, do(t, api, "POST", "/admin/v1/tenants", ak, `{"name":"acme"}`), 409, "", `tenant "acme" already exists`)
			wantErr(t, do(t, api, "GET", "/admin/v1/tenants/nope", ak, ""), 404, "", `tenant "nope" not found`)
			wantErr(t, do(t, api, "POST", "/admin/v1/tenants/nope/keys", ak, `{}`), 404, "", `tenant "nope" not found`)

			r = do(t, api, "PATCH", "/admin/v1/tenants/acme", ak, `{"tpm":5000}`)
			want(t, r, 200, "patch tenant")
			writes = append(writes, r.header.Get("X-Request-Id"))
			r.decode(t, &ten)
			if ten.RPM != 100 || ten.TPM != 5000 {
				t.Fatalf("patch keeps rpm and sets tpm: %s", r.body)
			}
			r = do(t, api, "GET", "/admin/v1/tenants", ak, "")
			want(t, r, 200, "list tenants")
			var tl struct{ Data []tenantOut }
			r.decode(t, &tl)
			if len(tl.Data) != 2 || tl.Data[0].Name != "acme" || tl.Data[1].Name != "admin" {
				t.Fatalf("tenants: %s", r.body)
			}

			r = do(t, api, "POST", "/admin/v1/tenants/acme/keys", ak, `{"models":[],"expires_in":"720h","role":"user","rpm":10}`)
			want(t, r, 201, "create key")
			writes = append(writes, r.header.Get("X-Request-Id"))
			var uk keyOut
			r.decode(t, &uk)
			if !strings.HasPrefix(uk.Key, store.KeyPrefix+uk.ID+"_") || uk.Role != "user" || uk.Tenant != "acme" ||
				uk.RPM != 10 || uk.ExpiresAt == nil || (uk.ExpiresAt.Sub(f.clock.Now())-720*time.Hour).Abs() > time.Millisecond {
				t.Fatalf("created key: %s", r.body)
			}
			secrets := []string{uk.Key}

			want(t, do(t, api, "GET", "/v1/models", uk.Key, ""), 200, "the new key on /v1/models")
			wantErr(t, do(t, api, "GET", "/admin/v1/tenants", uk.Key, ""), 403, "", "may not use the admin API")
			if e := do(t, api, "POST", "/admin/v1/tenants", uk.Key, `{"name":"evil"}`).err(t); e.Error.Code == nil || *e.Error.Code != "permission_denied" {
				t.Fatalf("user key code: %+v", e)
			}
			if _, err := f.st.GetTenant(context.Background(), "evil"); err == nil {
				t.Fatal("a user key created a tenant")
			}

			r = do(t, api, "GET", "/admin/v1/tenants/acme/keys", ak, "")
			want(t, r, 200, "list keys")
			var kl struct{ Data []keyOut }
			r.decode(t, &kl)
			if len(kl.Data) != 1 || kl.Data[0].ID != uk.ID || kl.Data[0].Key != "" || strings.Contains(string(r.body), "hash") {
				t.Fatalf("keys list: %s", r.body)
			}

			r = do(t, api, "PATCH", "/admin/v1/keys/"+uk.ID, ak, `{"models":["m1"],"rpm":20}`)
			want(t, r, 200, "patch key")
			writes = append(writes, r.header.Get("X-Request-Id"))
			var pk keyOut
			r.decode(t, &pk)
			if !slices.Equal(pk.Models, []string{"m1"}) || pk.RPM != 20 || pk.Key != "" {
				t.Fatalf("patched key: %s", r.body)
			}

			r = do(t, api, "DELETE", "/admin/v1/keys/"+uk.ID, ak, "")
			want(t, r, 200, "revoke key")
			writes = append(writes, r.header.Get("X-Request-Id"))
			r.decode(t, &pk)
			if pk.Status != "revoked" {
				t.Fatalf("revoked key: %s", r.body)
			}
			f.clock.Add(keyTTL)
			wantErr(t, do(t, api, "GET", "/v1/models", uk.Key, ""), 401, "", "revoked")
			wantErr(t, do(t, api, "DELETE", "/admin/v1/keys/aaaaaaaaaaaa", ak, ""), 404, "", `API key "aaaaaaaaaaaa" not found`)

			// Suspension: the tenant's other key stops working; resume restores it.
			r = do(t, api, "POST", "/admin/v1/tenants/acme/keys", ak, `{}`)
			want(t, r, 201, "second key")
			writes = append(writes, r.header.Get("X-Request-Id"))
			var k2 keyOut
			r.decode(t, &k2)
			secrets = append(secrets, k2.Key)
			want(t, do(t, api, "GET", "/v1/models", k2.Key, ""), 200, "second key before suspension")
			r = do(t, api, "DELETE", "/admin/v1/tenants/acme", ak, "")
			want(t, r, 200, "suspend")
			writes = append(writes, r.header.Get("X-Request-Id"))
			r.decode(t, &ten)
			if ten.Status != "suspended" {
				t.Fatalf("suspended tenant: %s", r.body)
			}
			f.clock.Add(keyTTL)
			wantErr(t, do(t, api, "GET", "/v1/models", k2.Key, ""), 401, "", "suspended")
			wantErr(t, do(t, api, "DELETE", "/admin/v1/tenants/admin", ak, ""), 409, "", "holds the key making this request")
			r = do(t, api, "POST", "/admin/v1/tenants/acme/resume", ak, "")
			want(t, r, 200, "resume")
			writes = append(writes, r.header.Get("X-Request-Id"))
			f.clock.Add(keyTTL)
			want(t, do(t, api, "GET", "/v1/models", k2.Key, ""), 200, "second key after resume")

			// The audit log: every write, newest first, by the admin key, with
			// the request id it was answered with, and no secret or hash.
			r = do(t, api, "GET", "/admin/v1/audit", ak, "")
			want(t, r, 200, "audit")
			var al auditOut
			r.decode(t, &al)
			wantActions := []string{store.AuditTenantResume, store.AuditTenantSuspend, store.AuditKeyCreate, store.AuditKeyRevoke,
				store.AuditKeyUpdate, store.AuditKeyCreate, store.AuditTenantLimits, store.AuditTenantCreate}
			if len(al.Data) != len(wantActions) {
				t.Fatalf("audit has %d records, want %d: %s", len(al.Data), len(wantActions), r.body)
			}
			for i, a := range al.Data {
				if a.Action != wantActions[i] || a.Actor != adminID || a.RequestID != writes[len(writes)-1-i] {
					t.Errorf("audit[%d] = %+v, want action %s by %s, request %s", i, a, wantActions[i], adminID, writes[len(writes)-1-i])
				}
			}
			if al.Data[5].Target != uk.ID || al.Data[7].Target != "acme" {
				t.Errorf("audit targets: %s", r.body)
			}
			for _, s := range append(secrets, ak) {
				id, sec, err := store.ParseKey(s)
				if err != nil {
					t.Fatal(err)
				}
				for _, leak := range []string{s, sec, hex.EncodeToString(store.HashSecret(sec)), store.KeyPrefix} {
					if strings.Contains(string(r.body), leak) {
						t.Errorf("audit JSON contains a secret of key %s: %q", id, leak)
					}
				}
			}
			r = do(t, api, "GET", "/admin/v1/audit?limit=2", ak, "")
			var page struct {
				Data       []struct{ ID int64 }
				NextBefore int64 `json:"next_before"`
			}
			r.decode(t, &page)
			if len(page.Data) != 2 || page.NextBefore != al.Data[1].ID {
				t.Fatalf("audit page: %s", r.body)
			}
			r = do(t, api, "GET", "/admin/v1/audit?limit=100&before="+jsonNum(page.NextBefore), ak, "")
			page.NextBefore = 0 // omitted when there is no next page
			r.decode(t, &page)
			if len(page.Data) != len(wantActions)-2 || page.Data[0].ID != al.Data[2].ID || page.NextBefore != 0 {
				t.Fatalf("audit second page: %s", r.body)
			}
		})
	}
}

func jsonNum(v int64) string { b, _ := json.Marshal(v); return string(b) }

// Bad input is a 400 (or 404/405/413) in OpenAI's shape that names the
// field in the caller's terms, and changes nothing.
func TestAdminBadInput(t *testing.T) {
	f := newFixture(t, realStores[0].dsn(t), serve.AdminAPIOnAPI)
	api, ak := f.api.URL, f.adminKey
	want(t, do(t, api, "POST", "/admin/v1/tenants", ak, `{"name":"acme"}`), 201, "create tenant")
	for _, tc := range []struct {
		method, path, body string
		status             int
		param, msg         string
	}{
		{"POST", "/admin/v1/tenants", `{"name":"x","foo":1}`, 400, "foo", `unknown field "foo"`},
		{"POST", "/admin/v1/tenants", `{"name":"x","rpm":"ten"}`, 400, "rpm", `"rpm" must be a whole number`},
		{"POST", "/admin/v1/tenants", `{"name":"x","rpm":1.5}`, 400, "rpm", `"rpm" must be a whole number`},
		{"POST", "/admin/v1/tenants", `{"name":"x","tpm":-1}`, 400, "tpm", `"tpm" must not be negative`},
		{"POST", "/admin/v1/tenants", `{"name":"x","tpm":99999999999999999999}`, 400, "tpm", `"tpm" is too large`},
		{"POST", "/admin/v1/tenants", `{"name":7}`, 400, "name", `"name" must be a string`},
		{"POST", "/admin/v1/tenants", `{"name":" x"}`, 400, "name", "leading or trailing spaces"},
		{"POST", "/admin/v1/tenants", `{"name":"x"`, 400, "", "not valid JSON"},
		{"POST", "/admin/v1/tenants", `[1]`, 400, "", "must be a JSON object"},
		{"POST", "/admin/v1/tenants", `{"name":"x"} {}`, 400, "", "nothing after it"},
		{"POST", "/admin/v1/tenants", ``, 400, "", "must be a JSON object"},
		{"POST", "/admin/v1/tenants", `{"name":"x","pad":"` + strings.Repeat("a", maxBody) + `"}`, 413, "", "exceeds"},
		{"PUT", "/admin/v1/tenants", `{}`, 405, "", "method PUT not allowed"},
		{"POST", "/admin/v1/tenants/acme", `{}`, 405, "", "use DELETE, GET, PATCH"},
		{"PATCH", "/admin/v1/tenants/acme", `{}`, 400, "", "nothing to change"},
		{"PATCH", "/admin/v1/tenants/acme", `{"name":"y"}`, 400, "name", `unknown field "name"`},
		{"GET", "/admin/v1/tenants/acme", `{"x":1}`, 400, "", "takes no body"},
		{"POST", "/admin/v1/tenants/acme/keys", `{"role":"root"}`, 400, "role", `"role" must be "user" or "admin" (got "root")`},
		{"POST", "/admin/v1/tenants/acme/keys", `{"expires_in":"30 days"}`, 400, "expires_in", `"expires_in" must be a positive duration`},
		{"POST", "/admin/v1/tenants/acme/keys", `{"expires_in":"-1h"}`, 400, "expires_in", `"expires_in" must be a positive duration`},
		{"POST", "/admin/v1/tenants/acme/keys", `{"expires_in":720}`, 400, "expires_in", `"expires_in" must be a string`},
		{"POST", "/admin/v1/tenants/acme/keys", `{"models":"m1"}`, 400, "models", `"models" must be a list of model names`},
		{"POST", "/admin/v1/tenants/acme/keys", `{"models":[""]}`, 400, "models", "must be non-empty"},
		{"POST", "/admin/v1/tenants/acme/keys", `{"secret":"sk-llm-x"}`, 400, "secret", `unknown field "secret"`},
		{"PATCH", "/admin/v1/keys/aaaaaaaaaaaa", `{"role":"admin"}`, 400, "role", `unknown field "role"`},
		{"PATCH", "/admin/v1/keys/aaaaaaaaaaaa", `{"rpm":1}`, 404, "", `API key "aaaaaaaaaaaa" not found`},
		{"GET", "/admin/v1/audit?since=yesterday", "", 400, "since", `"since" must be an RFC 3339 time`},
		{"GET", "/admin/v1/audit?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "", 400, "until", "must be after"},
		{"GET", "/admin/v1/audit?limit=0", "", 400, "limit", `"limit" must be a whole number from 1 to 1000`},
		{"GET", "/admin/v1/audit?cursor=1", "", 400, "cursor", `unknown query parameter "cursor"`},
		{"GET", "/admin/v1/nothing", "", 404, "", "unknown URL: GET /admin/v1/nothing"},
	} {
		r := do(t, api, tc.method, tc.path, ak, tc.body)
		t.Run(tc.method+" "+tc.path+" "+tc.body[:min(len(tc.body), 40)], func(t *testing.T) { wantErr(t, r, tc.status, tc.param, tc.msg) })
		if tc.status == 405 && r.header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
	}
	if r := do(t, api, "PUT", "/admin/v1/tenants", ak, ""); r.header.Get("Allow") != "GET, POST" {
		t.Errorf("Allow = %q, want GET, POST", r.header.Get("Allow"))
	}
	ts, err := f.st.ListTenants(context.Background())
	if err != nil || len(ts) != 2 {
		t.Fatalf("bad input changed the tenants: %v %v", ts, err)
	}
	recs, err := f.st.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil || len(recs) != 1 {
		t.Fatalf("bad input wrote audit records: %+v %v", recs, err)
	}
}

// An admin key's own RPM applies to the admin API like to any route.
func TestAdminRateLimitedPerKey(t *testing.T) {
	f := newFixture(t, realStores[0].dsn(t), serve.AdminAPIOnAPI)
	r := do(t, f.api.URL, "POST", "/admin/v1/tenants/admin/keys", f.adminKey, `{"role":"admin","rpm":2}`)
	want(t, r, 201, "limited admin key")
	var k keyOut
	r.decode(t, &k)
	for i := range 2 {
		want(t, do(t, f.api.URL, "GET", "/admin/v1/tenants", k.Key, ""), 200, "within rpm "+jsonNum(int64(i)))
	}
	r = do(t, f.api.URL, "GET", "/admin/v1/tenants", k.Key, "")
	wantErr(t, r, 429, "", "")
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("429 without Retry-After: %v", r.header)
	}
	// Another key is not affected by this one's bucket.
	want(t, do(t, f.api.URL, "GET", "/admin/v1/tenants", f.adminKey, ""), 200, "the bootstrap key")
}

// --admin-api admin moves the API to the admin listener, with the same key
// check; off serves it nowhere.
func TestAdminAPIPlacement(t *testing.T) {
	dsn := realStores[0].dsn(t)
	f := newFixture(t, dsn, serve.AdminAPIOnAdmin)
	wantErr(t, do(t, f.api.URL, "GET", "/admin/v1/tenants", f.adminKey, ""), 404, "", "unknown URL")
	want(t, do(t, f.adm.URL, "GET", "/admin/v1/tenants", f.adminKey, ""), 200, "admin listener")
	wantErr(t, do(t, f.adm.URL, "GET", "/admin/v1/tenants", "", ""), 401, "", "missing API key")
	want(t, do(t, f.adm.URL, "GET", "/metrics", "", ""), 200, "metrics still served")
	r := do(t, f.adm.URL, "POST", "/admin/v1/tenants", f.adminKey, `{"name":"viaadmin"}`)
	want(t, r, 201, "write on the admin listener")
	recs, err := f.st.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil || len(recs) != 1 || recs[0].RequestID != r.header.Get("X-Request-Id") || recs[0].RequestID == "" {
		t.Fatalf("audit on the admin listener: %+v %v", recs, err)
	}

	off := newFixture(t, realStores[0].dsn(t), serve.AdminAPIOff)
	wantErr(t, do(t, off.api.URL, "GET", "/admin/v1/tenants", off.adminKey, ""), 404, "", "unknown URL")
	want(t, do(t, off.adm.URL, "GET", "/admin/v1/tenants", off.adminKey, ""), 404, "off on the admin listener")

	if _, err := serve.New(serve.Options{Auth: store.NewAuthenticator(f.st, 0), AdminAPI: "public"}); err == nil || !strings.Contains(err.Error(), "AdminAPI") {
		t.Fatalf("bad AdminAPI: %v", err)
	}
}

// The handler alone refuses a request the gateway did not authenticate, so
// mounting it without the gateway exposes nothing.
func TestAdminHandlerNeedsCaller(t *testing.T) {
	st, err := store.Open(context.Background(), realStores[0].dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := admin.New(admin.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	wantErr(t, do(t, srv.URL, "GET", "/admin/v1/tenants", "", ""), 401, "", "missing API key")
	if _, err := admin.New(admin.Options{}); err == nil {
		t.Fatal("New without a store must fail")
	}
}

// The admin API's errors have exactly the gateway's shape.
func TestAdminErrorShape(t *testing.T) {
	f := newFixture(t, realStores[0].dsn(t), serve.AdminAPIOnAPI)
	shape := func(r reply) []string {
		var m map[string]map[string]any
		if err := json.Unmarshal(r.body, &m); err != nil || len(m) != 1 {
			t.Fatalf("%s: %v", r.body, err)
		}
		var ks []string
		for k := range m["error"] {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	gw := shape(do(t, f.api.URL, "GET", "/v1/models", "", ""))
	adm := shape(do(t, f.api.URL, "POST", "/admin/v1/tenants", f.adminKey, `{"foo":1}`))
	if !slices.Equal(gw, []string{"code", "message", "param", "type"}) || !slices.Equal(gw, adm) {
		t.Fatalf("gateway error fields %v, admin %v", gw, adm)
	}
}

// Two replicas on one PostgreSQL database: an admin key revoked through one
// stops working on the other once that one's key cache TTL has passed, and
// so does an admin key whose tenant is suspended.
func TestAdminKeyRevokedOnEveryReplica(t *testing.T) {
	dsn := realStores[1].dsn(t)
	a := newFixture(t, dsn, serve.AdminAPIOnAPI)
	b := newReplica(t, openStore(t, dsn), serve.AdminAPIOnAPI)
	newAdmin := func(tenant string) string {
		r := do(t, a.api.URL, "POST", "/admin/v1/tenants/"+tenant+"/keys", a.adminKey, `{"role":"admin"}`)
		want(t, r, 201, "admin key")
		var k keyOut
		r.decode(t, &k)
		// Used on both replicas first, so both have it cached.
		want(t, do(t, a.api.URL, "GET", "/admin/v1/tenants", k.Key, ""), 200, "replica a")
		want(t, do(t, b.api.URL, "GET", "/admin/v1/tenants", k.Key, ""), 200, "replica b")
		return k.Key
	}
	stepBoth := func() { a.clock.Add(keyTTL); b.clock.Add(keyTTL) }

	k1 := newAdmin("admin")
	id1, _, _ := store.ParseKey(k1)
	want(t, do(t, a.api.URL, "DELETE", "/admin/v1/keys/"+id1, a.adminKey, ""), 200, "revoke on a")
	stepBoth()
	for _, f := range []*fixture{a, b} {
		wantErr(t, do(t, f.api.URL, "GET", "/admin/v1/tenants", k1, ""), 401, "", "revoked")
	}

	want(t, do(t, a.api.URL, "POST", "/admin/v1/tenants", a.adminKey, `{"name":"ops"}`), 201, "ops tenant")
	k2 := newAdmin("ops")
	want(t, do(t, a.api.URL, "DELETE", "/admin/v1/tenants/ops", a.adminKey, ""), 200, "suspend on a")
	stepBoth()
	for _, f := range []*fixture{a, b} {
		wantErr(t, do(t, f.api.URL, "GET", "/admin/v1/tenants", k2, ""), 401, "", "suspended")
	}
}
