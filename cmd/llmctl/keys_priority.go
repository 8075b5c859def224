package main

import (
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

// newKeysUpdateCmd is `llmctl keys update ID --priority P`: a key's place in
// the admission queue (docs/routing.md), by the database or the admin API.
func newKeysUpdateCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	var (
		priority string
		format   printer.Format
	)
	cmd := &cobra.Command{
		Use:   "update ID --priority high|normal|low",
		Short: "Change a key's priority in the admission queue (--priority \"\" unsets it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("priority") {
				return fmt.Errorf("nothing to change: give --priority")
			}
			if err := checkPriorityFlag(priority); err != nil {
				return err
			}
			ctx, id := cmd.Context(), args[0]
			c, err := rf.remote(db)
			if err != nil {
				return err
			}
			if c != nil {
				k, err := c.UpdateKey(ctx, id, adminclient.KeyPatch{Priority: &priority})
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
			k, err := st.UpdateKey(ctx, id, store.KeyUpdate{Priority: &priority})
			if err != nil {
				return err
			}
			if err := recordAudit(ctx, st, store.AuditKeyUpdate, k.ID, map[string]any{"priority": priority}); err != nil {
				return err
			}
			return printKeys(g, format, false, k)
		},
	}
	cmd.Flags().StringVar(&priority, "priority", "", "high, normal or low; \"\" unsets it (the config's for its tenant, else normal)")
	printer.Bind(cmd, &format)
	return cmd
}
