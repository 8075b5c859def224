package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

func TestAuditCLISQLite(t *testing.T) {
	testAuditCLI(t, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
}

func TestAuditCLIPostgres(t *testing.T) {
	testAuditCLI(t, testenv.PG(t).NewDatabase(t))
}

// Every CLI write leaves a record with actor "cli", listed newest first and
// paged by --before; no record holds the key's secret or its hash.
func testAuditCLI(t *testing.T, dsn string) {
	must := func(args ...string) (string, string) {
		t.Helper()
		out, errOut, err := run(t, append(args, "--db", dsn)...)
		if err != nil {
			t.Fatalf("llmctl %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		return out, errOut
	}
	must("tenants", "create", "acme")
	out, _ := must("keys", "create", "--tenant", "acme", "--role", "admin", "--models", "m1", "-o", "json")
	var key struct{ ID, Key string }
	if err := json.Unmarshal([]byte(out), &key); err != nil {
		t.Fatal(err)
	}
	must("keys", "limits", key.ID, "--rpm", "9")
	must("keys", "revoke", key.Key)
	must("tenants", "limits", "acme", "--tpm", "100")
	must("tenants", "suspend", "acme")
	must("tenants", "resume", "acme")

	js, _ := must("audit", "-o", "json")
	var recs []store.AuditRecord
	if err := json.Unmarshal([]byte(js), &recs); err != nil {
		t.Fatal(err)
	}
	want := []string{"tenant.resume", "tenant.suspend", "tenant.limits", "key.revoke", "key.update", "key.create", "tenant.create"}
	var got []string
	for _, r := range recs {
		got = append(got, r.Action)
		if r.Actor != store.AuditActorCLI {
			t.Errorf("record %d (%s): actor %q, want cli", r.ID, r.Action, r.Actor)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("audit actions, newest first:\n got %v\nwant %v", got, want)
	}
	created := recs[5]
	var d struct{ Tenant, Role string }
	if err := json.Unmarshal(created.Details, &d); err != nil || created.Target != key.ID || d.Tenant != "acme" || d.Role != "admin" {
		t.Fatalf("key.create record %+v (details %s): want target %s, tenant acme, role admin", created, created.Details, key.ID)
	}
	if recs[3].Target != key.ID {
		t.Fatalf("key.revoke target %q, want the id %s (the full key was given)", recs[3].Target, key.ID)
	}

	_, secret, err := store.ParseKey(key.Key)
	if err != nil {
		t.Fatal(err)
	}
	hash := store.HashSecret(secret)
	table, _ := must("audit")
	yaml, _ := must("audit", "-o", "yaml")
	for _, leak := range []string{secret, hex.EncodeToString(hash), base64.StdEncoding.EncodeToString(hash),
		base64.RawURLEncoding.EncodeToString(hash)} {
		for name, out := range map[string]string{"json": js, "table": table, "yaml": yaml} {
			if strings.Contains(out, leak) {
				t.Fatalf("audit -o %s holds the key's secret or hash (%.8s…):\n%s", name, leak, out)
			}
		}
	}

	page, hint := must("audit", "--limit", "2")
	if strings.Count(page, "\n") != 3 || !strings.Contains(page, "tenant.resume") || !strings.Contains(hint, "--before") {
		t.Fatalf("audit --limit 2: want a header, two rows and a hint for the next page:\n%s\n%s", page, hint)
	}
	older, _ := must("audit", "--limit", "2", "--before", strconv.FormatInt(recs[1].ID, 10), "-o", "json")
	var next []store.AuditRecord
	if err := json.Unmarshal([]byte(older), &next); err != nil || len(next) != 2 || next[0].ID != recs[2].ID || next[1].ID != recs[3].ID {
		t.Fatalf("second page = %+v, %v; want records %d and %d", next, err, recs[2].ID, recs[3].ID)
	}
	if out, _ := must("audit", "--since", "1h", "-o", "json"); !strings.Contains(out, "tenant.create") {
		t.Fatalf("audit --since 1h misses the records just written:\n%s", out)
	}
}

func TestAuditCLIGarbage(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"audit", "--limit", "0"}, "--limit"},
		{[]string{"audit", "--limit", "5000"}, "--limit"},
		{[]string{"audit", "--before", "-3"}, "--before"},
		{[]string{"audit", "--since", "soon"}, "--since"},
		{[]string{"audit", "--until", "later"}, "--until"},
		{[]string{"audit", "--since", "2026-01-02", "--until", "2026-01-01"}, "--since must be before --until"},
		{[]string{"audit", "-o", "xml"}, "xml"},
		{[]string{"audit", "extra"}, "unknown command"},
	}
	for _, c := range cases {
		_, _, err := run(t, append(c.args, "--db", db)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("llmctl %s: want error containing %q, got %v", strings.Join(c.args, " "), c.want, err)
		}
	}
}
