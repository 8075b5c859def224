package store

import (
	"context"
	"testing"
)

// The database itself refuses to change or delete an audit record, whoever
// connects to it.
func TestAuditAppendOnly(t *testing.T) {
	for _, rs := range realStores() {
		t.Run(rs.name, func(t *testing.T) {
			ctx := context.Background()
			st := openReal(t, rs.dsn(t)).(*sqlStore)
			r, err := st.AppendAudit(ctx, AuditRecord{Actor: AuditActorCLI, Action: AuditTenantCreate, Target: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{`UPDATE audit_log SET target = 'other' WHERE seq = $1`, `DELETE FROM audit_log WHERE seq = $1`} {
				if _, err := st.c.exec(ctx, q, r.ID); err == nil {
					t.Errorf("%s: succeeded on an append-only table", q)
				}
			}
			if got, err := st.ListAudit(ctx, AuditFilter{}); err != nil || len(got) != 1 || got[0].Target != "acme" {
				t.Fatalf("audit log after refused changes = %+v, %v", got, err)
			}
		})
	}
}
