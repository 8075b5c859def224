package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// run executes llmctl with args in-process and returns stdout, stderr and the error.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(context.Background(), streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestVersionJSON(t *testing.T) {
	out, _, err := run(t, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("version -o json is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"version", "commit", "date", "goVersion", "platform"} {
		if v[k] == "" {
			t.Errorf("field %q empty in %s", k, out)
		}
	}
}

func TestVersionBadOutput(t *testing.T) {
	_, _, err := run(t, "version", "-o", "xml")
	if err == nil || !strings.Contains(err.Error(), "xml") {
		t.Fatalf("want error naming the bad format, got %v", err)
	}
}

func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		out, _, err := run(t, "completion", sh)
		if err != nil || !strings.Contains(out, "llmctl") {
			t.Errorf("completion %s: err=%v, %d bytes", sh, err, len(out))
		}
	}
	if _, _, err := run(t, "completion", "tcsh"); err == nil {
		t.Error("completion tcsh: want error")
	}
}

func TestBadLogLevel(t *testing.T) {
	_, _, err := run(t, "--log-level", "loud", "version")
	if err == nil || !strings.Contains(err.Error(), "loud") {
		t.Fatalf("want error naming the level, got %v", err)
	}
}

// TestNoColorEmptyKeepsColour follows no-color.org: NO_COLOR disables colour
// only when it is set to a non-empty value.
func TestNoColorEmptyKeepsColour(t *testing.T) {
	for v, want := range map[string]bool{"": true, "1": false, "0": false} {
		t.Setenv("NO_COLOR", v)
		if got := (&globals{}).Color(); got != want {
			t.Errorf("NO_COLOR=%q: Color() = %v, want %v", v, got, want)
		}
	}
	if (&globals{NoColor: true}).Color() {
		t.Error("--no-color still coloured")
	}
}

// TestUsageMistakesExitTwo: a mistyped subcommand, a wrong argument count
// or an unknown flag is an error that exits 2 and points at the help,
// never help printed with exit 0.
func TestUsageMistakesExitTwo(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ledger", "balanse"}, `unknown command "balanse" for "llmctl ledger"; did you mean balance?`},
		{[]string{"tennants"}, `did you mean tenants?`},
		{[]string{"tenants", "create"}, "accepts 1 arg(s)"},
		{[]string{"ledger", "entries", "--bogus"}, "unknown flag: --bogus"},
	} {
		_, _, err := run(t, tc.args...)
		var ec exitCoder
		if err == nil || !errors.As(err, &ec) || ec.ExitCode() != 2 || !isUsage(err) {
			t.Errorf("%v: err = %v, want a usage error exiting 2", tc.args, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--help") {
			t.Errorf("%v: %q does not say %q and where the help is", tc.args, err, tc.want)
		}
	}
	// A group alone still shows its help, successfully.
	out, _, err := run(t, "ledger")
	if err != nil || !strings.Contains(out, "Available Commands") {
		t.Errorf("llmctl ledger: err %v, out %q", err, out)
	}
}
