package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
	"github.com/llmctl/llmctl/pkg/serve/config"
)

// dbFlag binds --db: flag, else LLMCTL_DB, else the config file's db:
// (--config or LLMCTL_CONFIG), else the embedded SQLite default: the order
// `serve` uses, so a key made with the same flags is the one it reads.
type dbFlag struct {
	DSN string
	g   *globals // for --config and where to say which store was used
}

func (d *dbFlag) bind(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&d.DSN, "db", "", "database: postgres://… or sqlite:PATH (env LLMCTL_DB; default SQLite in the data dir)")
}

func (d *dbFlag) resolve() (string, error) {
	if d.DSN != "" {
		return d.DSN, nil
	}
	fileDB, path, err := d.g.configDB()
	if err != nil {
		return "", err
	}
	if v := os.Getenv("LLMCTL_DB"); v != "" {
		if fileDB != "" && fileDB != v && d.g != nil {
			fmt.Fprintf(d.g.ErrOut, "note: using LLMCTL_DB, not db: from %s\n", path)
		}
		return v, nil
	}
	if fileDB != "" {
		return fileDB, nil
	}
	return store.DefaultDSN()
}

// configDB reads db: from the config file named by --config or
// LLMCTL_CONFIG ("" when there is none, or it sets no db:).
func (g *globals) configDB() (dsn, path string, err error) {
	if g == nil {
		return "", "", nil
	}
	path = g.ConfigFile
	if path == "" {
		path = os.Getenv("LLMCTL_CONFIG")
	}
	if path == "" {
		return "", "", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("--config: %w", err)
	}
	defer f.Close()
	var c config.Config
	if err := c.MergeFile(path, f); err != nil {
		return "", "", err
	}
	return c.DB, path, nil
}

func (d *dbFlag) open(ctx context.Context) (store.Store, error) {
	dsn, err := d.resolve()
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, dsn)
}

// limitFlags binds --rpm, --tpm, --max-concurrency, --batch-rpm and
// --batch-tpm.
type limitFlags struct{ billing.Limits }

func (l *limitFlags) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Int64Var(&l.RPM, "rpm", 0, "requests per minute (0 = config default)")
	f.Int64Var(&l.TPM, "tpm", 0, "tokens per minute (0 = config default)")
	f.Int64Var(&l.MaxConcurrency, "max-concurrency", 0, "concurrent requests (0 = config default)")
	bindBatchLimits(cmd, &l.BatchRPM, &l.BatchTPM)
}

// bindBatchLimits binds --batch-rpm and --batch-tpm: the limits of batch
// lines, counted apart from --rpm and --tpm (docs/limits.md).
func bindBatchLimits(cmd *cobra.Command, rpm, tpm *int64) {
	f := cmd.Flags()
	f.Int64Var(rpm, "batch-rpm", 0, "requests per minute of batch lines, apart from --rpm (0 = config default, limits.batch)")
	f.Int64Var(tpm, "batch-tpm", 0, "tokens per minute of batch lines, apart from --tpm (0 = config default, limits.batch)")
}

func (l *limitFlags) validate() error {
	if l.RPM < 0 || l.TPM < 0 || l.MaxConcurrency < 0 || l.BatchRPM < 0 || l.BatchTPM < 0 {
		return fmt.Errorf("--rpm, --tpm, --max-concurrency, --batch-rpm and --batch-tpm must not be negative")
	}
	return nil
}

func fmtLimit(v int64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprint(v)
}

func fmtModels(m []string) string {
	if len(m) == 0 {
		return "*"
	}
	return strings.Join(m, ",")
}

// newLimitsCmd builds `tenants limits` and `keys limits`, which differ only in
// what they update and print.
func newLimitsCmd(g *globals, db *dbFlag, rf *remoteFlags, use, short string,
	setRemote func(ctx context.Context, c *adminclient.Client, ref string, l billing.Limits, f printer.Format) error,
	set func(ctx context.Context, st store.Store, ref string, l billing.Limits, f printer.Format) error) *cobra.Command {
	var (
		lim    limitFlags
		format printer.Format
	)
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := lim.validate(); err != nil {
				return err
			}
			c, err := rf.remote(db)
			if err != nil {
				return err
			}
			if c != nil {
				return setRemote(cmd.Context(), c, args[0], lim.Limits, format)
			}
			st, err := db.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			return set(cmd.Context(), st, args[0], lim.Limits, format)
		},
	}
	lim.bind(cmd)
	printer.Bind(cmd, &format)
	return cmd
}

// options is a command in the Complete/Validate/Run style.
type options interface {
	Complete(args []string) error
	Validate() error
	Run(cmd *cobra.Command, g *globals) error
}

// runOptions is the RunE of a command in that style.
func runOptions(g *globals, o options) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := o.Complete(args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return o.Run(cmd, g)
	}
}

// recordAudit appends a CLI write to the audit log with actor "cli". The
// write has already happened, so a failure is reported, not undone.
func recordAudit(ctx context.Context, st store.Store, action, target string, details any) error {
	d := json.RawMessage(nil)
	if details != nil {
		var err error
		if d, err = json.Marshal(details); err != nil {
			return fmt.Errorf("audit %s: %w", action, err)
		}
	}
	if _, err := st.AppendAudit(ctx, store.AuditRecord{Actor: store.AuditActorCLI, Action: action, Target: target, Details: d}); err != nil {
		return fmt.Errorf("%s %s is done, but writing its audit record failed: %w", action, target, err)
	}
	return nil
}
