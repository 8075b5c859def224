package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/admin"
)

// loadOpenAPI fetches the document the API serves and loads it with
// kin-openapi, as a client generator would.
func loadOpenAPI(t *testing.T, api, key string) *openapi3.T {
	t.Helper()
	r := do(t, api, "GET", "/admin/v1/openapi.json", key, "")
	want(t, r, 200, "openapi.json")
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("openapi.json served as %q", ct)
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.body)
	if err != nil {
		t.Fatalf("load the served OpenAPI document: %v", err)
	}
	return doc
}

// The served document is OpenAPI 3.1 and valid (JSON Schema 2020-12 rules,
// refs resolved, examples checked against their schemas).
func TestOpenAPIDocumentValidates(t *testing.T) {
	f := newFixture(t, realStores[0].dsn(t), serve.AdminAPIOnAPI)
	doc := loadOpenAPI(t, f.api.URL, f.adminKey)
	if !doc.IsOpenAPI31OrLater() || doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("the OpenAPI document is invalid: %v", err)
	}
	// Only an admin key reads it, like the rest of the admin API.
	wantErr(t, do(t, f.api.URL, "GET", "/admin/v1/openapi.json", "", ""), 401, "", "missing API key")
}

// Every route and method the admin mux registers is in the document, and
// the document has nothing the mux does not serve (but /v1/me, which the
// gateway serves itself).
func TestOpenAPICoversEveryRoute(t *testing.T) {
	h, err := admin.New(admin.Options{Store: openStore(t, realStores[0].dsn(t))})
	if err != nil {
		t.Fatal(err)
	}
	// The document as the handler serves it.
	req := httptest.NewRequest("GET", "/admin/v1/openapi.json", nil)
	req = req.WithContext(admin.WithCaller(req.Context(), billing.Principal{KeyID: "k", Role: billing.RoleAdmin}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("openapi.json: %d %s", rec.Code, rec.Body)
	}
	doc, err := openapi3.NewLoader().LoadFromData(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	served := map[string][]string{"/v1/me": {"GET"}, "/v1/me/redeem": {"POST"}}
	routes := h.Routes()
	if len(routes) < 11 {
		t.Fatalf("only %d routes: %+v", len(routes), routes)
	}
	for _, rt := range routes {
		served[rt.Path] = rt.Methods
	}
	for path, methods := range served {
		pi := doc.Paths.Value(path)
		if pi == nil {
			t.Errorf("route %s is not in the OpenAPI document", path)
			continue
		}
		for _, m := range methods {
			if pi.GetOperation(m) == nil {
				t.Errorf("%s %s is not in the OpenAPI document", m, path)
			}
		}
		for m := range pi.Operations() {
			if !slices.Contains(methods, m) {
				t.Errorf("the OpenAPI document has %s %s, which is not served", m, path)
			}
		}
	}
	for path := range doc.Paths.Map() {
		if _, ok := served[path]; !ok {
			t.Errorf("the OpenAPI document has %s, which is not served", path)
		}
	}
}

// validator checks real answers against the document's schemas.
type validator struct {
	t   *testing.T
	doc *openapi3.T
	api string
}

// call makes the request, checks its body (when checkReq) and the answer
// against the operation of tmpl, and returns the answer.
func (v validator) call(method, tmpl, path, key, body string, checkReq bool) reply {
	v.t.Helper()
	r := do(v.t, v.api, method, path, key, body)
	pi := v.doc.Paths.Value(tmpl)
	if pi == nil || pi.GetOperation(method) == nil {
		v.t.Fatalf("%s %s is not in the document", method, tmpl)
	}
	u, err := url.Parse(v.api + path)
	if err != nil {
		v.t.Fatal(err)
	}
	req, err := http.NewRequest(method, u.String(), strings.NewReader(body))
	if err != nil {
		v.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	route := &routers.Route{Spec: v.doc, Path: tmpl, PathItem: pi, Method: method, Operation: pi.GetOperation(method)}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: pathParams(tmpl, u.Path), Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	ctx := context.Background()
	if checkReq {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			v.t.Fatalf("request %s %s %s does not match the document: %v", method, path, body, err)
		}
	}
	if err := v.response(in, r); err != nil {
		v.t.Fatalf("answer to %s %s (%d %s) does not match the document: %v", method, path, r.status, r.body, err)
	}
	return r
}

func (v validator) response(in *openapi3filter.RequestValidationInput, r reply) error {
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: r.status, Header: r.header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes(r.body)
	return openapi3filter.ValidateResponse(context.Background(), out)
}

// errorAnswer checks r, an answer to a request the document does not
// describe (a wrong method, an unknown URL), against its Error schema.
func (v validator) errorAnswer(r reply) {
	v.t.Helper()
	if err := v.errorSchema(r.body); err != nil {
		v.t.Fatalf("error answer %d %s does not match the Error schema: %v", r.status, r.body, err)
	}
}

func (v validator) errorSchema(b []byte) error {
	var body any
	if err := json.Unmarshal(b, &body); err != nil {
		return err
	}
	return v.doc.Components.Schemas["Error"].Value.VisitJSON(body, openapi3.EnableJSONSchema2020())
}

// pathParams matches a path against its template ("/a/{x}/b").
func pathParams(tmpl, path string) map[string]string {
	out := map[string]string{}
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	for i, s := range ts {
		if strings.HasPrefix(s, "{") && i < len(ps) {
			out[strings.Trim(s, "{}")], _ = url.PathUnescape(ps[i])
		}
	}
	return out
}

// Real answers of the API, successes and errors, on each database, match
// the response schemas of the document (which refuse unknown fields).
func TestOpenAPIResponsesMatch(t *testing.T) {
	onEachLedger(t, func(t *testing.T, f *fixture, lg *ledger.Ledger) {
		ctx := context.Background()
		ak := f.adminKey
		v := validator{t: t, doc: loadOpenAPI(t, f.api.URL, ak), api: f.api.URL}

		want(t, v.call("POST", "/admin/v1/tenants", "/admin/v1/tenants", ak, `{"name":"acme","rpm":100,"tpm":1000}`, true), 201, "create tenant")
		want(t, v.call("GET", "/admin/v1/tenants", "/admin/v1/tenants", ak, "", true), 200, "list tenants")
		want(t, v.call("GET", "/admin/v1/tenants/{name}", "/admin/v1/tenants/acme", ak, "", true), 200, "get tenant")
		want(t, v.call("PATCH", "/admin/v1/tenants/{name}", "/admin/v1/tenants/acme", ak, `{"max_concurrency":4}`, true), 200, "patch tenant")
		r := v.call("POST", "/admin/v1/tenants/{name}/keys", "/admin/v1/tenants/acme/keys", ak,
			`{"name":"ci","models":["m1"],"expires_in":"720h","role":"user","rpm":10}`, true)
		want(t, r, 201, "create key")
		var uk keyOut
		r.decode(t, &uk)
		want(t, v.call("GET", "/admin/v1/tenants/{name}/keys", "/admin/v1/tenants/acme/keys", ak, "", true), 200, "list keys")
		want(t, v.call("GET", "/admin/v1/keys/{id}", "/admin/v1/keys/"+uk.ID, ak, "", true), 200, "get key")
		want(t, v.call("PATCH", "/admin/v1/keys/{id}", "/admin/v1/keys/"+uk.ID, ak, `{"tpm":99}`, true), 200, "patch key")

		credit := `{"amount":"12.50","reason":"invoice 1","idempotency_key":"inv-1"}`
		want(t, v.call("POST", "/admin/v1/tenants/{name}/credits", "/admin/v1/tenants/acme/credits", ak, credit, true), 201, "credit")
		want(t, v.call("POST", "/admin/v1/tenants/{name}/credits", "/admin/v1/tenants/acme/credits", ak, credit, true), 200, "replayed credit")
		if _, err := lg.Credit(ctx, ledger.Entry{Key: "charge:oa-1", TenantID: uk.tenantID(t, f), Kind: ledger.KindDebit,
			Amount: -1_500, Model: "m1", KeyID: uk.ID, PromptTokens: 10, CompletionTokens: 5, Time: f.clock.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
		want(t, v.call("GET", "/admin/v1/tenants/{name}/balance", "/admin/v1/tenants/acme/balance", ak, "", true), 200, "balance")
		r = v.call("GET", "/admin/v1/tenants/{name}/entries", "/admin/v1/tenants/acme/entries?limit=1", ak, "", true)
		want(t, r, 200, "entries")
		var page struct {
			Data       []json.RawMessage
			NextCursor string `json:"next_cursor"`
		}
		r.decode(t, &page)
		if len(page.Data) != 1 || page.NextCursor == "" || !strings.Contains(string(page.Data[0]), `"prompt_tokens":10`) || !strings.Contains(string(page.Data[0]), `"key_id":"`+uk.ID+`"`) {
			t.Fatalf("entries page: %s", r.body)
		}
		want(t, v.call("GET", "/admin/v1/tenants/{name}/entries", "/admin/v1/tenants/acme/entries?since=24h&cursor="+page.NextCursor, ak, "", true), 200, "entries page 2")
		want(t, v.call("GET", "/admin/v1/tenants/{name}/spend", "/admin/v1/tenants/acme/spend", ak, "", true), 200, "spend")
		want(t, v.call("GET", "/admin/v1/tenants/{name}/spend", "/admin/v1/tenants/acme/spend?since=720h&by=model", ak, "", true), 200, "spend by model")
		r = v.call("GET", "/admin/v1/tenants/{name}/spend", "/admin/v1/tenants/acme/spend?since=720h&by=key", ak, "", true)
		want(t, r, 200, "spend by key")
		if !strings.Contains(string(r.body), `"key_id":"`+uk.ID+`","amount":"0.001500","amount_micros":1500,"requests":1`) {
			t.Fatalf("spend by key: %s", r.body)
		}
		want(t, v.call("GET", "/admin/v1/audit", "/admin/v1/audit?limit=2", ak, "", true), 200, "audit")
		want(t, v.call("GET", "/v1/me", "/v1/me", uk.Key, "", true), 200, "/v1/me")
		want(t, v.call("DELETE", "/admin/v1/keys/{id}", "/admin/v1/keys/"+uk.ID, ak, "", true), 200, "revoke key")
		want(t, v.call("DELETE", "/admin/v1/tenants/{name}", "/admin/v1/tenants/acme", ak, "", true), 200, "suspend tenant")
		want(t, v.call("POST", "/admin/v1/tenants/{name}/resume", "/admin/v1/tenants/acme/resume", ak, "", true), 200, "resume tenant")
		want(t, v.call("GET", "/admin/v1/openapi.json", "/admin/v1/openapi.json", ak, "", true), 200, "openapi.json")
		want(t, v.call("GET", "/admin/v1/prices", "/admin/v1/prices", ak, "", true), 200, "prices")
		want(t, v.call("GET", "/admin/v1/prices", "/admin/v1/prices?model=m1", ak, "", true), 404, "unpriced model")

		// Errors, in OpenAI's shape.
		want(t, v.call("POST", "/admin/v1/tenants", "/admin/v1/tenants", ak, `{"name":"acme"}`, true), 409, "duplicate tenant")
		want(t, v.call("POST", "/admin/v1/tenants", "/admin/v1/tenants", ak, `{"name":"x","color":"red"}`, false), 400, "unknown field")
		want(t, v.call("GET", "/admin/v1/tenants/{name}/entries", "/admin/v1/tenants/acme/entries?until=yesterday", ak, "", false), 400, "bad until")
		want(t, v.call("GET", "/admin/v1/tenants/{name}/spend", "/admin/v1/tenants/acme/spend?by=tenant", ak, "", false), 400, "by=tenant")
		want(t, v.call("GET", "/admin/v1/tenants/{name}/balance", "/admin/v1/tenants/nope/balance", ak, "", true), 404, "unknown tenant")
		want(t, v.call("GET", "/admin/v1/tenants", "/admin/v1/tenants", uk.Key, "", true), 403, "user key on the admin API")
		want(t, v.call("GET", "/admin/v1/tenants", "/admin/v1/tenants", "", "", true), 401, "no key")
		r = do(t, f.api.URL, "PUT", "/admin/v1/tenants", ak, "")
		want(t, r, 405, "wrong method")
		v.errorAnswer(r)
		want(t, v.call("GET", "/v1/me", "/v1/me", "", "", true), 401, "/v1/me without a key")
	})
}

// Answers without a ledger match too; and the validator is not vacuous:
// an answer missing a field, or with one the document does not have, is
// refused.
func TestOpenAPIValidatorRefusesDrift(t *testing.T) {
	f := newFixture(t, realStores[0].dsn(t), serve.AdminAPIOnAPI)
	v := validator{t: t, doc: loadOpenAPI(t, f.api.URL, f.adminKey), api: f.api.URL}
	// Without a ledger: /v1/me's billing is null, the ledger routes 501.
	want(t, v.call("GET", "/v1/me", "/v1/me", f.adminKey, "", true), 200, "/v1/me without a ledger")
	want(t, v.call("GET", "/admin/v1/tenants/{name}/spend", "/admin/v1/tenants/admin/spend", f.adminKey, "", true), 501, "spend without a ledger")
	unknown := do(t, f.api.URL, "GET", "/admin/v1/nope", f.adminKey, "")
	want(t, unknown, 404, "unknown URL")
	v.errorAnswer(unknown)

	r := v.call("GET", "/admin/v1/tenants/{name}", "/admin/v1/tenants/admin", f.adminKey, "", true)
	want(t, r, 200, "get tenant")
	req, _ := http.NewRequest("GET", f.api.URL+"/admin/v1/tenants/admin", nil)
	pi := v.doc.Paths.Value("/admin/v1/tenants/{name}")
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: map[string]string{"name": "admin"},
		Route: &routers.Route{Spec: v.doc, Path: "/admin/v1/tenants/{name}", PathItem: pi, Method: "GET", Operation: pi.Get}}
	var m map[string]any
	r.decode(t, &m)
	for name, change := range map[string]func(map[string]any){
		"missing rpm":    func(m map[string]any) { delete(m, "rpm") },
		"extra field":    func(m map[string]any) { m["secret"] = "x" },
		"unknown status": func(m map[string]any) { m["status"] = "deleted" },
	} {
		c := map[string]any{}
		for k, x := range m {
			c[k] = x
		}
		change(c)
		b, _ := json.Marshal(c)
		if err := v.response(in, reply{status: 200, header: r.header, body: b}); err == nil {
			t.Errorf("%s: a tenant answer %s passed validation", name, b)
		}
	}
	bad := reply{status: 404, header: r.header, body: []byte(`{"error":{"message":"x"}}`)}
	if err := v.response(in, bad); err == nil {
		t.Error("an error without type, param and code passed validation")
	}
	if err := v.errorSchema(bad.body); err == nil {
		t.Error("the Error schema accepts an error without type, param and code")
	}
}
