package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestTenantsAndKeysSQLite(t *testing.T) {
	testTenantsAndKeys(t, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
}

func TestTenantsAndKeysPostgres(t *testing.T) {
	testTenantsAndKeys(t, testenv.PG(t).NewDatabase(t))
}

func testTenantsAndKeys(t *testing.T, dsn string) {
	must := func(args ...string) string {
		t.Helper()
		out, errOut, err := run(t, append(args, "--db", dsn)...)
		if err != nil {
			t.Fatalf("llmctl %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		return out
	}
	var ten struct{ ID, Name string }
	if err := json.Unmarshal([]byte(must("tenants", "create", "acme", "--rpm", "60", "-o", "json")), &ten); err != nil || ten.Name != "acme" {
		t.Fatalf("tenants create -o json: %+v %v", ten, err)
	}
	out := must("keys", "create", "--tenant", "acme", "--models", "m1, m2", "--expires", "24h", "-o", "json")
	var key struct {
		ID     string   `json:"id"`
		Key    string   `json:"key"`
		Models []string `json:"models"`
		Tenant string   `json:"tenant"`
	}
	if err := json.Unmarshal([]byte(out), &key); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key.Key, "sk-llm-"+key.ID+"_") || key.Tenant != "acme" || strings.Join(key.Models, ",") != "m1,m2" {
		t.Fatalf("keys create -o json = %s", out)
	}
	if strings.Contains(out, "secret_hash") || strings.Contains(out, "SecretHash") {
		t.Fatal("hash printed")
	}
	table := must("keys", "create", "--tenant", ten.ID, "--role", "admin")
	if !strings.Contains(table, "key: sk-llm-") || !strings.Contains(table, "shown only once") {
		t.Fatalf("table output lacks the one-time key notice:\n%s", table)
	}
	list := must("keys", "list", "--tenant", "acme")
	if strings.Contains(list, key.Key) || strings.Count(list, "\n") != 3 || !strings.Contains(list, "m1,m2") {
		t.Fatalf("keys list:\n%s", list)
	}
	if !strings.Contains(list, "ROLE") || strings.Count(list, " user ") != 1 || strings.Count(list, " admin ") != 1 {
		t.Fatalf("keys list shows no role column with one user and one admin key:\n%s", list)
	}
	var roles []struct{ Role string }
	if err := json.Unmarshal([]byte(must("keys", "list", "--tenant", "acme", "-o", "json")), &roles); err != nil ||
		len(roles) != 2 || roles[0].Role != "user" || roles[1].Role != "admin" {
		t.Fatalf("keys list -o json roles = %+v, %v", roles, err)
	}
	must("keys", "revoke", key.Key) // the full key is accepted and reduced to its id
	var keys []struct {
		ID        string  `json:"id"`
		RevokedAt *string `json:"revokedAt"`
	}
	if err := json.Unmarshal([]byte(must("keys", "list", "-o", "json")), &keys); err != nil {
		t.Fatal(err)
	}
	revoked := 0
	for _, k := range keys {
		if k.RevokedAt != nil {
			revoked++
			if k.ID != key.ID {
				t.Fatalf("wrong key revoked: %s", k.ID)
			}
		}
	}
	if revoked != 1 {
		t.Fatalf("%d keys revoked, want 1", revoked)
	}
	lim := must("keys", "limits", key.ID, "--tpm", "500", "-o", "yaml")
	if !strings.Contains(lim, "tpm: 500") {
		t.Fatalf("keys limits -o yaml:\n%s", lim)
	}
	if out := must("tenants", "limits", "acme", "--max-concurrency", "3"); !strings.Contains(out, "3") {
		t.Fatalf("tenants limits:\n%s", out)
	}
	if out := must("tenants", "list"); !strings.Contains(out, "acme") || !strings.HasPrefix(out, "ID") {
		t.Fatalf("tenants list:\n%s", out)
	}
	var sus struct{ SuspendedAt *string }
	if err := json.Unmarshal([]byte(must("tenants", "suspend", "acme", "-o", "json")), &sus); err != nil || sus.SuspendedAt == nil {
		t.Fatalf("tenants suspend -o json: %+v %v", sus, err)
	}
	if out := must("tenants", "list"); !strings.Contains(out, "suspended") {
		t.Fatalf("tenants list after suspend:\n%s", out)
	}
	if out := must("tenants", "resume", ten.ID); !strings.Contains(out, "active") || strings.Contains(out, "suspended") {
		t.Fatalf("tenants resume:\n%s", out)
	}
}

func TestTenantsAndKeysGarbage(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")
	if _, _, err := run(t, "tenants", "create", "acme", "--db", db); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"tenants", "create", "acme"}, "already exists"},
		{[]string{"tenants", "create", " x"}, "leading or trailing"},
		{[]string{"tenants", "create", "b", "--rpm", "-1"}, "negative"},
		{[]string{"tenants", "create", "b", "--rpm", "many"}, "invalid argument"},
		{[]string{"tenants", "list", "-o", "xml"}, "xml"},
		{[]string{"keys", "create"}, "--tenant is required"},
		{[]string{"keys", "create", "--tenant", "ghost"}, "not found"},
		{[]string{"keys", "create", "--tenant", "acme", "--expires", "soon"}, "--expires"},
		{[]string{"keys", "create", "--tenant", "acme", "--expires", "-5h"}, "positive"},
		{[]string{"keys", "create", "--tenant", "acme", "--models", "a,,b"}, "empty model"},
		{[]string{"keys", "create", "--tenant", "acme", "--role", "root"}, "--role"},
		{[]string{"keys", "revoke", "nope"}, "not found"},
		{[]string{"tenants", "suspend", "ghost"}, "not found"},
		{[]string{"tenants", "resume"}, "accepts 1 arg"},
		{[]string{"keys", "limits", "nope", "--rpm", "1"}, "not found"},
	}
	for _, c := range cases {
		_, _, err := run(t, append(c.args, "--db", db)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("llmctl %s: want error containing %q, got %v", strings.Join(c.args, " "), c.want, err)
		}
	}
	if _, _, err := run(t, "tenants", "list", "--db", "mysql://u:hunter2@h/db"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad --db: want an error without the password, got %v", err)
	}
}

// TestConfigFileDBForEveryStoreCommand: `llmctl --config serve.yaml keys
// create …` writes to the config's db:, the store `serve --config` reads,
// not the default one; LLMCTL_DB and --db still win, in serve's order.
func TestConfigFileDBForEveryStoreCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "default-data"))
	t.Setenv("LLMCTL_DB", "")
	fileDB := filepath.Join(dir, "from-config.db")
	cfg := filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(cfg, []byte("db: sqlite:"+fileDB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := run(t, "--config", cfg, "tenants", "create", "acme"); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	out, _, err := run(t, "tenants", "list", "--db", "sqlite:"+fileDB, "-o", "json")
	if err != nil || !strings.Contains(out, `"acme"`) {
		t.Fatalf("the tenant is not in the config's db: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "default-data")); err == nil {
		t.Fatal("the default data dir was created although --config names a db")
	}
	// LLMCTL_DB overrides the file, and says so.
	envDB := filepath.Join(dir, "from-env.db")
	t.Setenv("LLMCTL_DB", "sqlite:"+envDB)
	_, errOut, err := run(t, "--config", cfg, "tenants", "create", "beta")
	if err != nil || !strings.Contains(errOut, "note: using LLMCTL_DB, not db: from "+cfg) {
		t.Fatalf("env over file: %v, stderr %q", err, errOut)
	}
	if out, _, _ := run(t, "tenants", "list", "--db", "sqlite:"+envDB, "-o", "json"); !strings.Contains(out, `"beta"`) {
		t.Fatalf("beta not in LLMCTL_DB's store: %s", out)
	}
	// A config file that does not parse is an error, not the default store.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("dbb: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LLMCTL_DB", "")
	if _, _, err := run(t, "--config", bad, "tenants", "list"); err == nil || !strings.Contains(err.Error(), "dbb") {
		t.Fatalf("bad config: %v", err)
	}
}

// TestListsAreListsInJSON: `keys list` and `tenants list -o json` print a
// list even with one item (or none), so a script never has to guess.
func TestListsAreListsInJSON(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")
	mustRun := func(args ...string) string {
		t.Helper()
		out, errOut, err := run(t, append(args, "--db", dsn)...)
		if err != nil {
			t.Fatalf("llmctl %v: %v\n%s", args, err, errOut)
		}
		return out
	}
	if out := strings.TrimSpace(mustRun("tenants", "list", "-o", "json")); out != "[]" {
		t.Fatalf("no tenants: %s", out)
	}
	mustRun("tenants", "create", "acme")
	mustRun("keys", "create", "--tenant", "acme")
	for _, args := range [][]string{{"tenants", "list", "-o", "json"}, {"keys", "list", "-o", "json"}} {
		var v []map[string]any
		if out := mustRun(args...); json.Unmarshal([]byte(out), &v) != nil || len(v) != 1 {
			t.Errorf("%v with one item: %s", args, out)
		}
	}
	// A single object stays an object where one thing is shown.
	var obj map[string]any
	if out := mustRun("tenants", "create", "beta", "-o", "json"); json.Unmarshal([]byte(out), &obj) != nil {
		t.Errorf("tenants create: %s", out)
	}
}
