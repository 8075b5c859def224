package preflight

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

// templateFix writes (or extends) K3s's containerd template so that the
// rendered config gains the nvidia runtime with runc's SystemdCgroup. It is
// offered only when the rendered config lacks the runtime, so it can never
// define the table twice.
func (e *Env) templateFix(c containerdConfig) *Fix {
	bins := e.runtimeBinaries()
	if len(bins) == 0 {
		return nil // nothing to point BinaryName at: install the toolkit first
	}
	bin := bins[0]
	systemd := c.Runtimes["runc"].systemd()
	if _, ok := c.Runtimes["runc"]; !ok {
		mode, _ := e.cgroup()
		systemd = mode == cgroupV2 && e.pid1() == "systemd"
	}
	name := "config.toml.tmpl"
	table := `plugins."io.containerd.grpc.v1.cri".containerd.runtimes."` + facts.RuntimeHandler + `"`
	if c.Version >= 3 {
		name = "config-v3.toml.tmpl"
		table = `plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.'` + facts.RuntimeHandler + `'`
	}
	host := k3sContainerdDir + "/" + name
	existing, err := e.read(host)
	base := baseTemplateCall + "\n"
	if err == nil {
		base = strings.TrimRight(existing, "\n") + "\n"
	}
	content := fmt.Sprintf("%s\n# Added by llmctl doctor --fix: the NVIDIA runtime for GPU pods (RuntimeClass nvidia).\n[%s]\n  runtime_type = \"io.containerd.runc.v2\"\n\n[%s.options]\n  BinaryName = %q\n  SystemdCgroup = %t\n",
		base, table, table, bin, systemd)
	target := e.path(host)
	return &Fix{
		ID:      "containerd-template",
		Summary: "write " + host + " adding the nvidia runtime (then restart K3s)",
		Preview: content,
		Apply: func(ctx context.Context) (string, error) {
			backup, err := writeWithBackup(target, []byte(content), time.Now())
			if err != nil {
				return "", err
			}
			msg := "wrote " + host
			if backup != "" {
				msg += " (previous version kept as " + backup + ")"
			}
			return msg + "; restart K3s to render it: sudo systemctl restart k3s", nil
		},
	}
}

// writeWithBackup writes data to path atomically (temp file + rename). An
// existing file is first copied to path.bak-<unix time>, which is returned.
func writeWithBackup(path string, data []byte, now time.Time) (string, error) {
	backup := ""
	if old, err := os.ReadFile(path); err == nil {
		backup = fmt.Sprintf("%s.bak-%d", path, now.Unix())
		if err := os.WriteFile(backup, old, 0o600); err != nil {
			return "", fmt.Errorf("back up %s: %w", path, err)
		}
	} else if !os.IsNotExist(err) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".llmctl-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return backup, nil
}

// Confirm asks whether to apply a fix; the command implements it with a
// prompt, or answers yes for --yes.
type Confirm func(f *Fix) (bool, error)

// FixResult is what happened to one fix.
type FixResult struct {
	ID      string `json:"id"`
	Applied bool   `json:"applied"`
	Message string `json:"message"`
}

// ApplyFixes shows each fix the report offers on w, asks confirm, and applies
// the accepted ones in order. A failed fix is reported and the rest go on.
func ApplyFixes(ctx context.Context, r Report, w io.Writer, confirm Confirm) []FixResult {
	var out []FixResult
	for _, f := range r.Fixes() {
		fmt.Fprintf(w, "\nfix %s: %s\n%s", f.ID, f.Summary, indentBlock(f.Preview, "    | "))
		ok, err := confirm(f)
		if err != nil {
			out = append(out, FixResult{ID: f.ID, Message: "not applied: " + err.Error()})
			continue
		}
		if !ok {
			out = append(out, FixResult{ID: f.ID, Message: "skipped"})
			fmt.Fprintln(w, "skipped")
			continue
		}
		msg, err := f.Apply(ctx)
		if err != nil {
			msg = "failed: " + err.Error()
		}
		fmt.Fprintln(w, msg)
		out = append(out, FixResult{ID: f.ID, Applied: err == nil, Message: msg})
	}
	return out
}

func indentBlock(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(prefix + l + "\n")
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
