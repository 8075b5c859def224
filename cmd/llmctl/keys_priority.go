package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

// checkPriorityFlag checks --priority: high, normal, low or "".
func checkPriorityFlag(p string) error {
	if billing.CheckPriority(p) != nil {
		return fmt.Errorf("--priority %q: want %s, %s or %s", p, billing.PriorityHigh, billing.PriorityNormal, billing.PriorityLow)
	}
	return nil
}

// newKeysUpdateCmd is `llmctl keys update ID [--priority P] [--batch-rpm N]
// [--batch-tpm N]`: a key's place in the admission queue (docs/routing.md)
// and its batch-only limits (docs/limits.md), by the database or the admin
// API. Only the flags given change; `keys limits` replaces every limit.
func newKeysUpdateCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	var (
		priority           string
		batchRPM, batchTPM int64
		format             printer.Format
	)
	cmd := &cobra.Command{
		Use:   "update ID [--priority high|normal|low] [--batch-rpm N] [--batch-tpm N]",
		Short: "Change a key's priority in the admission queue (--priority \"\" unsets it) or its batch-only limits",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var p adminclient.KeyPatch
			fs := cmd.Flags()
			if fs.Changed("priority") {
				if err := checkPriorityFlag(priority); err != nil {
					return err
				}
				p.Priority = &priority
			}
			for _, f := range []struct {
				name string
				v    *int64
				dst  **int64
			}{{"batch-rpm", &batchRPM, &p.BatchRPM}, {"batch-tpm", &batchTPM, &p.BatchTPM}} {
				if !fs.Changed(f.name) {
					continue
				}
				if *f.v < 0 {
					return fmt.Errorf("--%s must not be negative", f.name)
				}
				*f.dst = f.v
			}
			if p == (adminclient.KeyPatch{}) {
				return fmt.Errorf("nothing to change: give --priority, --batch-rpm or --batch-tpm")
			}
			ctx, id := cmd.Context(), args[0]
			c, err := rf.remote(db)
			if err != nil {
				return err
			}
			if c != nil {
				k, err := c.UpdateKey(ctx, id, p)
				if err != nil {
					return err
				}
				return printKeys(g, format, false, keyFromAPI(k))
			}
			st, err := db.open(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			k, err := updateKeyLocal(ctx, st, id, p)
			if err != nil {
				return err
			}
			return printKeys(g, format, false, k)
		},
	}
	cmd.Flags().StringVar(&priority, "priority", "", "high, normal or low; \"\" unsets it (the config's for its tenant, else normal)")
	bindBatchLimits(cmd, &batchRPM, &batchTPM)
	printer.Bind(cmd, &format)
	return cmd
}

// updateKeyLocal applies p to key id in the database and records it in the
// audit log. A batch limit is merged into the key's other limits, read
// first: as the admin API's PATCH does, the last writer's whole set wins.
func updateKeyLocal(ctx context.Context, st store.Store, id string, p adminclient.KeyPatch) (store.Key, error) {
	u := store.KeyUpdate{Priority: p.Priority}
	details := map[string]any{}
	if p.Priority != nil {
		details["priority"] = *p.Priority
	}
	if p.BatchRPM != nil || p.BatchTPM != nil {
		k, err := st.GetKey(ctx, id)
		if err != nil {
			return store.Key{}, err
		}
		l := k.Limits
		if p.BatchRPM != nil {
			l.BatchRPM = *p.BatchRPM
		}
		if p.BatchTPM != nil {
			l.BatchTPM = *p.BatchTPM
		}
		u.Limits, details["limits"] = &l, l
	}
	k, err := st.UpdateKey(ctx, id, u)
	if err != nil {
		return store.Key{}, err
	}
	return k, recordAudit(ctx, st, store.AuditKeyUpdate, k.ID, details)
}
