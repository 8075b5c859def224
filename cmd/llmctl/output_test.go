package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// outputCommands is every command with -o, by path (e.g. "ledger spend").
func outputCommands(t *testing.T) map[string]*cobra.Command {
	t.Helper()
	cmds := map[string]*cobra.Command{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if f := c.Flags().Lookup(printer.Flag); f != nil {
			cmds[strings.TrimPrefix(c.CommandPath(), "llmctl ")] = c
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRootCmd(context.Background(), streams{}))
	if len(cmds) < 15 {
		t.Fatalf("only %d commands with -o: %v", len(cmds), cmds)
	}
	return cmds
}

// TestEveryOutputFlagIsShared: each command's -o is printer.Bind's (one
// spelling, default, validation and completion), a bad value is a usage
// error (exit 2) naming the formats that command offers, and the shell
// completes exactly those.
func TestEveryOutputFlagIsShared(t *testing.T) {
	for path, c := range outputCommands(t) {
		f := c.Flags().Lookup(printer.Flag)
		if f.Shorthand != "o" || f.Value.Type() != "format" || f.DefValue != "table" {
			t.Errorf("%s: -o is not the shared flag (short %q, type %q, default %q)", path, f.Shorthand, f.Value.Type(), f.DefValue)
			continue
		}
		valid := strings.TrimPrefix(f.Usage[strings.Index(f.Usage, "output format: "):], "output format: ")
		args := append(strings.Fields(path), "-o", "xml")
		_, _, err := run(t, args...)
		if !isUsage(err) || exitCode(err) != 2 || !strings.Contains(err.Error(), `"xml"`) || !strings.Contains(err.Error(), valid) {
			t.Errorf("llmctl %s -o xml: want a usage error naming %q, got %v", path, valid, err)
		}
		out, _, err := run(t, append([]string{cobra.ShellCompRequestCmd}, append(strings.Fields(path), "-o", "")...)...)
		if err != nil {
			t.Fatalf("complete %s -o: %v", path, err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if got := strings.Join(lines[:len(lines)-1], ", "); got != valid || lines[len(lines)-1] != ":4" {
			t.Errorf("complete %s -o: %q, want %q and no file completion (:4)", path, out, valid)
		}
	}
}

// TestOutputGolden prints one representative command, ledger spend (the
// one that offers every format), in each format against golden files.
func TestOutputGolden(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")
	for _, n := range []string{"acme", "zeta"} {
		if _, errOut, err := run(t, "tenants", "create", n, "--db", dsn); err != nil {
			t.Fatalf("tenants create %s: %v\n%s", n, err, errOut)
		}
	}
	ids := map[string]string{"acme": tenantID(t, dsn, "acme"), "zeta": tenantID(t, dsn, "zeta")}
	lg, err := ledger.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if _, err := lg.Apply(context.Background(), []ledger.Entry{
		{Key: "req:1", TenantID: ids["acme"], Kind: ledger.KindDebit, Amount: -250_000, Model: "m", Time: now.Add(-time.Minute)},
		{Key: "req:2", TenantID: ids["acme"], Kind: ledger.KindDebit, Amount: -1, Model: "m", Time: now.Add(-time.Minute)},
		{Key: "req:3", TenantID: ids["zeta"], Kind: ledger.KindDebit, Amount: -1_000_000, Model: "m", Time: now.Add(-time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	lg.Close()
	for _, f := range []string{"table", "json", "yaml", "csv"} {
		out, errOut, err := run(t, "ledger", "spend", "--db", dsn, "-o", f)
		if err != nil {
			t.Fatalf("ledger spend -o %s: %v\n%s", f, err, errOut)
		}
		// Tenant ids are random: the golden files name them by tenant.
		for n, id := range ids {
			out = strings.ReplaceAll(out, id, "<"+n+"-id>")
		}
		checkGolden(t, "ledger-spend."+f, out)
	}
	// No -o is table.
	out, _, err := run(t, "ledger", "spend", "--db", dsn)
	if err != nil || !strings.HasPrefix(out, "TENANT") {
		t.Errorf("ledger spend without -o: %v\n%s", err, out)
	}
}
