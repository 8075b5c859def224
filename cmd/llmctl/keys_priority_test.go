package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/admin"
)

func TestKeysPrioritySQLite(t *testing.T) {
	testKeysPriority(t, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
}

func TestKeysPriorityPostgres(t *testing.T) {
	testKeysPriority(t, testenv.PG(t).NewDatabase(t))
}

// testKeysPriority: `keys create --priority` and `keys update --priority`
// through the database and through the admin API of a gateway on it.
func testKeysPriority(t *testing.T, dsn string) {
	st, srvURL, adminKey := adminGateway(t, dsn)
	ctx := context.Background()
	if _, err := st.CreateTenant(ctx, "acme", store.Tenant{}.Limits); err != nil {
		t.Fatal(err)
	}
	for _, where := range [][]string{{"--db", dsn}, {"--server", srvURL, "--api-key", adminKey}} {
		llmctl := func(args ...string) (string, error) {
			t.Helper()
			out, errOut, err := run(t, append(args, where...)...)
			return out + errOut, err
		}
		priority := func(out string, err error) string {
			t.Helper()
			var k struct{ ID, Priority string }
			if err != nil || json.Unmarshal([]byte(out), &k) != nil {
				t.Fatalf("%s: %v\n%s", where[0], err, out)
			}
			return k.ID + " " + k.Priority
		}
		id, p, _ := strings.Cut(priority(llmctl("keys", "create", "--tenant", "acme", "--priority", "high", "-o", "json")), " ")
		if p != "high" {
			t.Fatalf("%s: keys create --priority high: %q", where[0], p)
		}
		if got := priority(llmctl("keys", "update", id, "--priority", "low", "-o", "json")); got != id+" low" {
			t.Fatalf("%s: keys update --priority low: %q", where[0], got)
		}
		if got := priority(llmctl("keys", "update", id, "--priority", "", "-o", "json")); got != id+" " {
			t.Fatalf("%s: keys update --priority \"\": %q", where[0], got)
		}
		if k, err := st.GetKey(ctx, id); err != nil || k.Priority != "" {
			t.Fatalf("%s: stored %+v %v", where[0], k, err)
		}
		for args, want := range map[string]string{
			"keys update " + id:                      "give --priority",
			"keys update " + id + " --priority top":  `--priority "top": want high, normal or low`,
			"keys create --tenant acme --priority x": `--priority "x": want high, normal or low`,
		} {
			if out, err := llmctl(strings.Fields(args)...); err == nil || !strings.Contains(err.Error()+out, want) {
				t.Errorf("%s: llmctl %s: %v %s, want %q", where[0], args, err, out, want)
			}
		}
	}
}

// adminGateway opens the store at dsn with an admin key and serves the
// admin API on it (opts add to its options), for a command run with --db
// and with --server alike.
func adminGateway(t *testing.T, dsn string, opts ...func(*admin.Options)) (st store.Store, url, adminKey string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if adminKey, err = serve.EnsureAdmin(ctx, st, ""); err != nil {
		t.Fatal(err)
	}
	ao := admin.Options{Store: st}
	for _, o := range opts {
		o(&ao)
	}
	ah, err := admin.New(ao)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := serve.New(serve.Options{Auth: store.NewAuthenticator(st, 0), Admin: ah})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return st, srv.URL, adminKey
}
