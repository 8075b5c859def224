package preflight

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSelect(t *testing.T) {
	all := All()
	got, err := Select(all, []string{"gpu", "host.kernel"}, []string{"gpu.health"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range got {
		ids = append(ids, c.ID)
	}
	if strings.Join(ids, " ") != "host.kernel gpu.nvml gpu.driver gpu.devices" {
		t.Errorf("selected %v", ids)
	}
	if _, err := Select(all, []string{"gpu.nvlm"}, nil); err == nil || !strings.Contains(err.Error(), "gpu.nvlm") {
		t.Errorf("typo: err = %v", err)
	}
	seen := map[string]bool{}
	for _, c := range all {
		if seen[c.ID] || !strings.HasPrefix(c.ID, string(c.Category)+".") || c.Title == "" || c.Run == nil {
			t.Errorf("check %q: duplicate, wrong prefix or incomplete", c.ID)
		}
		seen[c.ID] = true
	}
}

func TestRunRecoversPanicsAndOverruns(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	checks := []Check{
		{ID: "host.ok", Category: CatHost, Title: "ok", Run: func(context.Context, *Env) Outcome { return pass("fine") }},
		{ID: "host.panics", Category: CatHost, Title: "panics", Run: func(context.Context, *Env) Outcome { panic("boom") }},
		{ID: "host.stuck", Category: CatHost, Title: "ignores its context", Run: func(context.Context, *Env) Outcome {
			<-release
			return pass("too late")
		}},
	}
	// Only the stuck check may hit the deadline; the others must not race it
	// on a loaded machine, so they get their own, generous run.
	rep := Run(context.Background(), &Env{Root: t.TempDir()}, checks[:2], RunOptions{CheckTimeout: time.Minute})
	stuck := Run(context.Background(), &Env{Root: t.TempDir()}, checks[2:], RunOptions{CheckTimeout: 50 * time.Millisecond})
	rep = NewReport(append(rep.Results, stuck.Results...))
	want := map[string]Verdict{"host.ok": Pass, "host.panics": Fail, "host.stuck": Fail}
	for _, r := range rep.Results {
		if r.Verdict != want[r.ID] {
			t.Errorf("%s: %s %q, want %s", r.ID, r.Verdict, r.Message, want[r.ID])
		}
	}
	if !strings.Contains(rep.Results[1].Message, "boom") || !strings.Contains(rep.Results[2].Message, "did not finish") {
		t.Errorf("messages: %q / %q", rep.Results[1].Message, rep.Results[2].Message)
	}
	if rep.Summary != (Summary{Total: 3, Pass: 1, Fail: 2}) || rep.ExitCode(false) != 1 {
		t.Errorf("summary %+v exit %d", rep.Summary, rep.ExitCode(false))
	}
}

// TestRunBoundsConcurrency: with Concurrency 2, two checks run together
// (each waits until a second one has started) and never a third.
func TestRunBoundsConcurrency(t *testing.T) {
	var mu sync.Mutex
	cur, peak := 0, 0
	two := make(chan struct{})
	var once sync.Once
	body := func(ctx context.Context, _ *Env) Outcome {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		if cur == 2 {
			once.Do(func() { close(two) })
		}
		mu.Unlock()
		select {
		case <-two:
		case <-ctx.Done():
			return fail("no second check ran alongside", "")
		}
		mu.Lock()
		cur--
		mu.Unlock()
		return pass("ok")
	}
	var checks []Check
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		checks = append(checks, Check{ID: "host." + id, Category: CatHost, Title: id, Run: body})
	}
	rep := Run(context.Background(), &Env{Root: t.TempDir()}, checks, RunOptions{Concurrency: 2, CheckTimeout: 10 * time.Second})
	if rep.Summary.Pass != 5 || peak != 2 {
		t.Errorf("summary %+v, peak concurrency %d (want 2)", rep.Summary, peak)
	}
}

func TestExitCodeAndTable(t *testing.T) {
	fixOffered := &Fix{ID: "runtimeclass", Summary: "create it"}
	rep := NewReport([]Result{
		{ID: "host.kernel", Category: CatHost, Verdict: Pass, Message: "Linux 6.8", Evidence: []string{"hidden unless verbose"}},
		{ID: "cluster.runtimeclass", Category: CatCluster, Verdict: Warn, Message: "odd handler", Evidence: []string{"handler: runc"}, Remedy: "line one\nline two", FixID: "runtimeclass", fix: fixOffered},
	})
	if rep.ExitCode(false) != 0 || rep.ExitCode(true) != 1 {
		t.Errorf("exit codes %d/%d, want 0 and 1 (strict)", rep.ExitCode(false), rep.ExitCode(true))
	}
	if fx := rep.Fixes(); len(fx) != 1 || fx[0] != fixOffered {
		t.Errorf("fixes = %v", fx)
	}
	var plain, color, verbose bytes.Buffer
	if err := rep.WriteTable(&plain, TableOptions{}); err != nil {
		t.Fatal(err)
	}
	_ = rep.WriteTable(&color, TableOptions{Color: true})
	_ = rep.WriteTable(&verbose, TableOptions{Verbose: true})
	out := plain.String()
	for _, want := range []string{"HOST\n", "CLUSTER\n", "WARN  cluster.runtimeclass  odd handler", "· handler: runc", "fix: line one", "     line two", "--fix can apply this: runtimeclass", "2 checks: 1 passed, 1 warnings, 0 failed, 0 skipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") || strings.Contains(out, "hidden unless verbose") {
		t.Errorf("plain table has colour or passing evidence:\n%s", out)
	}
	if !strings.Contains(color.String(), "\x1b[33mWARN\x1b[0m") {
		t.Errorf("colour table lacks a yellow WARN:\n%q", color.String())
	}
	if !strings.Contains(verbose.String(), "hidden unless verbose") {
		t.Error("verbose table lacks passing evidence")
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"550.54.15", "535.54.03", 1}, {"535.54.03", "535.54.03", 0}, {"470.256.02", "535", -1}, {"8.9", "7.0", 1}, {"6.1", "7.0", -1}, {"12", "12.0.0", 0}} {
		if got := compareVersions(c.a, c.b); got != c.want {
			t.Errorf("compare(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestWriteWithBackup(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/sub/config.toml.tmpl"
	if b, err := writeWithBackup(p, []byte("one"), time.Unix(100, 0)); err != nil || b != "" {
		t.Fatalf("first write: backup %q err %v", b, err)
	}
	b, err := writeWithBackup(p, []byte("two"), time.Unix(200, 0))
	if err != nil || b != p+".bak-200" {
		t.Fatalf("second write: backup %q err %v", b, err)
	}
	if got := mustRead(t, b); got != "one" {
		t.Errorf("backup holds %q", got)
	}
	if got := mustRead(t, p); got != "two" {
		t.Errorf("file holds %q", got)
	}
}
