// Package top is the data side of `llmctl top`: the sources it reads (the
// gateways' /metrics, local GPUs, the billing ledger), behind small
// interfaces defined here, and the Monitor that turns successive readings
// into what the screen and `--once` show. It does IO only in Sources'
// methods, which the TUI (pkg/top/ui) calls from inside tea.Cmds.
package top
