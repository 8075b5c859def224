package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
)

func TestKeysBatchLimitsSQLite(t *testing.T) {
	testKeysBatchLimits(t, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
}

func TestKeysBatchLimitsPostgres(t *testing.T) {
	testKeysBatchLimits(t, testenv.PG(t).NewDatabase(t))
}

// testKeysBatchLimits: --batch-rpm and --batch-tpm on `tenants create`,
// `keys create`, `keys update` (only the flags given change) and `keys
// limits` (every limit replaced), through the database and through the
// admin API of a gateway on it, stored and printed alike.
func testKeysBatchLimits(t *testing.T, dsn string) {
	st, srvURL, adminKey := adminGateway(t, dsn)
	ctx := context.Background()
	for i, where := range [][]string{{"--db", dsn}, {"--server", srvURL, "--api-key", adminKey}} {
		llmctl := func(args ...string) (string, error) {
			t.Helper()
			out, errOut, err := run(t, append(args, where...)...)
			return out + errOut, err
		}
		limitsOf := func(out string, err error) (string, billing.Limits) {
			t.Helper()
			var v struct {
				ID     string
				Limits billing.Limits
			}
			if err != nil || json.Unmarshal([]byte(out), &v) != nil {
				t.Fatalf("%s: %v\n%s", where[0], err, out)
			}
			return v.ID, v.Limits
		}
		tenant := []string{"acme", "bolt"}[i]
		if _, l := limitsOf(llmctl("tenants", "create", tenant, "--batch-rpm", "50", "-o", "json")); l != (billing.Limits{BatchRPM: 50}) {
			t.Fatalf("%s: tenants create --batch-rpm 50: %+v", where[0], l)
		}
		if _, l := limitsOf(llmctl("tenants", "limits", tenant, "--rpm", "9", "--batch-tpm", "7000", "-o", "json")); l != (billing.Limits{RPM: 9, BatchTPM: 7000}) {
			t.Fatalf("%s: tenants limits --rpm 9 --batch-tpm 7000: %+v", where[0], l)
		}
		id, l := limitsOf(llmctl("keys", "create", "--tenant", tenant, "--rpm", "10", "--batch-rpm", "3", "--batch-tpm", "4000", "-o", "json"))
		if l != (billing.Limits{RPM: 10, BatchRPM: 3, BatchTPM: 4000}) {
			t.Fatalf("%s: keys create: %+v", where[0], l)
		}
		if _, l = limitsOf(llmctl("keys", "update", id, "--batch-rpm", "7", "-o", "json")); l != (billing.Limits{RPM: 10, BatchRPM: 7, BatchTPM: 4000}) {
			t.Fatalf("%s: keys update --batch-rpm 7: %+v, want only the batch rpm changed", where[0], l)
		}
		if _, l = limitsOf(llmctl("keys", "update", id, "--batch-tpm", "0", "--priority", "low", "-o", "json")); l != (billing.Limits{RPM: 10, BatchRPM: 7}) {
			t.Fatalf("%s: keys update --batch-tpm 0: %+v", where[0], l)
		}
		if _, l = limitsOf(llmctl("keys", "limits", id, "--tpm", "500", "-o", "json")); l != (billing.Limits{TPM: 500}) {
			t.Fatalf("%s: keys limits --tpm 500: %+v, want every limit replaced", where[0], l)
		}
		if _, l = limitsOf(llmctl("keys", "limits", id, "--batch-rpm", "2", "--batch-tpm", "20", "-o", "json")); l != (billing.Limits{BatchRPM: 2, BatchTPM: 20}) {
			t.Fatalf("%s: keys limits --batch-rpm 2 --batch-tpm 20: %+v", where[0], l)
		}
		if k, err := st.GetKey(ctx, id); err != nil || k.Limits != (billing.Limits{BatchRPM: 2, BatchTPM: 20}) || k.Priority != "low" {
			t.Fatalf("%s: stored %+v %v", where[0], k, err)
		}
		out, err := llmctl("keys", "list", "--tenant", tenant)
		if err != nil || !strings.Contains(out, "BATCH-RPM") || !strings.Contains(out, "BATCH-TPM") {
			t.Fatalf("%s: keys list: %v\n%s", where[0], err, out)
		}
		for args, want := range map[string]string{
			"keys update " + id + " --batch-rpm -1":        "--batch-rpm must not be negative",
			"keys limits " + id + " --batch-tpm -1":        "must not be negative",
			"keys create --tenant acme --batch-rpm -2":     "must not be negative",
			"keys update " + id:                            "nothing to change: give --priority, --batch-rpm or --batch-tpm",
			"keys update " + id + " --batch-rpm lots":      `invalid argument "lots" for "--batch-rpm"`,
			"tenants limits " + tenant + " --batch-tpm -3": "must not be negative",
		} {
			if out, err := llmctl(strings.Fields(args)...); err == nil || !strings.Contains(err.Error()+out, want) {
				t.Errorf("%s: llmctl %s: %v %s, want %q", where[0], args, err, out, want)
			}
		}
	}
}
