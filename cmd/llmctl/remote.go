package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

// remoteFlags binds --server and --api-key next to --db: with a server the
// command uses the admin API instead of the database.
type remoteFlags struct {
	Server string
	APIKey string
}

func (r *remoteFlags) bind(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&r.Server, "server", "", "use the llmctl server's admin API at this URL instead of --db (env LLMCTL_SERVER)")
	pf.StringVar(&r.APIKey, "api-key", "", "API key for --server: an admin key (env LLMCTL_API_KEY)")
}

// remote decides between --server and --db. A flag beats the other's
// environment variable; both flags, or both variables with neither flag,
// are an error rather than a guess about which database to change.
// It returns nil to mean "use the database".
func (r *remoteFlags) remote(db *dbFlag) (*adminclient.Client, error) {
	server := r.Server
	switch {
	case r.Server != "" && db != nil && db.DSN != "":
		return nil, fmt.Errorf("--server and --db both given: use one (--server for the admin API, --db for the database)")
	case r.Server == "" && db != nil && db.DSN != "":
		return nil, nil
	case r.Server == "":
		server = strings.TrimSpace(os.Getenv("LLMCTL_SERVER"))
		if server != "" && db != nil && os.Getenv("LLMCTL_DB") != "" {
			return nil, fmt.Errorf("LLMCTL_SERVER and LLMCTL_DB both set: pass --server or --db to choose")
		}
	}
	if server == "" {
		return nil, nil
	}
	return r.client(server)
}

func (r *remoteFlags) client(server string) (*adminclient.Client, error) {
	key := r.APIKey
	if key == "" {
		key = strings.TrimSpace(os.Getenv("LLMCTL_API_KEY"))
	}
	if key == "" {
		return nil, fmt.Errorf("--server needs an API key: --api-key or LLMCTL_API_KEY")
	}
	c, err := adminclient.New(server, key, nil)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	return c, nil
}

// notRemote is the answer of a command the admin API cannot serve yet.
func notRemote(cmd string) error {
	return fmt.Errorf("llmctl %s is not available with --server yet: run it with --db on the database", cmd)
}

// The admin API's values mapped into the store's, so --server prints
// exactly what --db prints.

func tenantFromAPI(t adminclient.Tenant) store.Tenant {
	return store.Tenant{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt, SuspendedAt: t.SuspendedAt,
		Limits: limitsFromAPI(t.Limits)}
}

func keyFromAPI(k adminclient.Key) store.Key {
	models := k.Models
	if len(models) == 0 {
		models = nil // the store's "every model", printed as * and omitted from JSON
	}
	return store.Key{ID: k.ID, TenantName: k.Tenant, Name: k.Name, Role: billing.Role(k.Role), Models: models,
		Limits:    limitsFromAPI(k.Limits),
		ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, CreatedAt: k.CreatedAt, Priority: k.Priority}
}

func limitsToAPI(l billing.Limits) adminclient.Limits {
	return adminclient.Limits{RPM: l.RPM, TPM: l.TPM, MaxConcurrency: l.MaxConcurrency, BatchRPM: l.BatchRPM, BatchTPM: l.BatchTPM}
}

func limitsFromAPI(l adminclient.Limits) billing.Limits {
	return billing.Limits{RPM: l.RPM, TPM: l.TPM, MaxConcurrency: l.MaxConcurrency, BatchRPM: l.BatchRPM, BatchTPM: l.BatchTPM}
}

func balanceFromAPI(b adminclient.Balance, tenantID string) balanceRow {
	return balanceRow{TenantID: tenantID, Tenant: b.Tenant, Balance: b.Balance, Reserved: b.Reserved, Available: b.Available,
		BalanceMicros: b.BalanceMicros, ReservedMicros: b.ReservedMicros}
}

func auditFromAPI(rs []adminclient.AuditRecord) []store.AuditRecord {
	out := make([]store.AuditRecord, 0, len(rs))
	for _, r := range rs {
		out = append(out, store.AuditRecord{ID: r.ID, Time: r.Time, Actor: r.Actor, Action: r.Action, Target: r.Target,
			RequestID: r.RequestID, Details: r.Details})
	}
	return out
}
