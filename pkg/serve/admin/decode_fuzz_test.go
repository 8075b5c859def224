package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// FuzzAdminDecode feeds arbitrary bodies to every admin JSON decoder: none
// may panic, a refusal is a 400 whose message speaks JSON (never a Go type
// name), and an accepted body holds only valid values. The seed corpus runs
// in a plain `go test`.
func FuzzAdminDecode(f *testing.F) {
	for _, s := range []string{
		`{"name":"acme","rpm":1,"tpm":2,"max_concurrency":3}`,
		`{"batch_rpm":1,"batch_tpm":2}`, `{"batch_rpm":-1}`, `{"batch_tpm":1.5}`, `{"batch_concurrency":1}`,
		`{"name":"acme","foo":1}`, `{"rpm":"1"}`, `{"rpm":1e3}`, `{"rpm":-0}`, `{"rpm":18446744073709551616}`,
		`{"models":[],"expires_in":"720h","role":"admin","rpm":1,"tpm":2}`, `{"models":null}`, `{"models":[1]}`,
		`{"role":null}`, `{"expires_in":"1e9h"}`, `{"name":"\u0000"}`, `{"name":"a","name":"b"}`,
		`null`, `[]`, `"x"`, `{}`, ``, `{"a":`, `{} x`, `{"rpm":1}{"rpm":2}`,
		`{"amount":"12.50","reason":"invoice","idempotency_key":"inv-1"}`, `{"amount":"-0.000001","reason":"fix"}`,
		`{"amount":"1e3","reason":"x"}`, `{"amount":"0.0000001","reason":"x"}`, `{"amount":"abc","reason":"x"}`,
		`{"amount":"","reason":"x"}`, `{"amount":12.5,"reason":"x"}`, `{"amount":"-0","reason":"x"}`,
		`{"amount":"9223372036854.775807","reason":"x"}`, `{"amount":"+.5","reason":"x","idempotency_key":"a\tb"}`,
	} {
		f.Add([]byte(s))
	}
	check := func(t *testing.T, which string, e *apiError) {
		t.Helper()
		if e == nil {
			return
		}
		if e.Status != http.StatusBadRequest || e.Message == "" || e.Type != typeInvalidRequest {
			t.Fatalf("%s: refusal %+v is not a 400 invalid_request_error with a message", which, e)
		}
		for _, goism := range []string{"int64", "json:", "struct", "[]string", "Go value", "time.Duration", "billing.", "store."} {
			if strings.Contains(e.Message, goism) {
				t.Fatalf("%s: message %q speaks Go (%q)", which, e.Message, goism)
			}
		}
	}
	nonNegative := func(t *testing.T, which string, l limitsBody) {
		t.Helper()
		for _, v := range []*int64{l.RPM, l.TPM, l.MaxConcurrency, l.BatchRPM, l.BatchTPM} {
			if v != nil && *v < 0 {
				t.Fatalf("%s: accepted a negative limit %d", which, *v)
			}
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ct, e := decodeCreateTenant(body)
		check(t, "create tenant", e)
		if e == nil {
			nonNegative(t, "create tenant", ct.Limits)
			if ct.Name == "" {
				t.Fatal("create tenant: accepted an empty name")
			}
		}
		l, e := decodeLimits(body)
		check(t, "tenant limits", e)
		if e == nil {
			nonNegative(t, "tenant limits", l)
			if !l.set() {
				t.Fatal("tenant limits: accepted a body changing nothing")
			}
		}
		ck, e := decodeCreateKey(body)
		check(t, "create key", e)
		if e == nil {
			nonNegative(t, "create key", ck.Limits)
			if ck.ExpiresIn < 0 || (ck.Role != "user" && ck.Role != "admin") {
				t.Fatalf("create key: accepted %+v", ck)
			}
		}
		cr, e := decodeCredit(body)
		check(t, "credit", e)
		if e == nil {
			// What was accepted is exactly what was sent, and is a valid entry.
			if cr.Amount == 0 || strings.TrimSpace(cr.Reason) == "" || len(cr.IdempotencyKey) > maxIdempotencyKey {
				t.Fatalf("credit: accepted %+v", cr)
			}
			if back, err := ledger.ParseMicros(cr.Amount.String()); err != nil || back != cr.Amount {
				t.Fatalf("credit: amount %d does not round-trip: %v", cr.Amount, err)
			}
		}
		pk, e := decodePatchKey(body)
		check(t, "patch key", e)
		if e == nil {
			nonNegative(t, "patch key", pk.Limits)
			if pk.Models != nil {
				for _, m := range *pk.Models {
					if strings.TrimSpace(m) == "" || m != strings.TrimSpace(m) {
						t.Fatalf("patch key: accepted model %q", m)
					}
				}
			}
		}
	})
}
