package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/llmctl/llmctl/internal/llmctltest"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// TestModelFileTruncatedWhileServing: serve two --model files, then
// truncate one (what `cp` over it does first) and rewrite it with other
// bytes. Both models go on answering as before and the process lives: with
// the file memory-mapped, the next request to the truncated model killed
// serve with SIGBUS.
func TestModelFileTruncatedWhileServing(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "kjv-a.gguf"), filepath.Join(dir, "kjv-b.gguf")
	var file bytes.Buffer
	if err := engine.WriteDemo(&file); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, file.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := llmctltest.Start(t, llmctltest.Options{Args: []string{"--model", a, "--model", b, "--engine-threads", "2"}})
	c := client(s, s.AdminKey)
	ask := func(model string) (string, error) {
		resp, err := c.Completions.New(ctxT(t), openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(model),
			MaxTokens: openai.Int(8), Temperature: openai.Float(0),
			Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("And God said")}})
		if err != nil {
			return "", err
		}
		if len(resp.Choices) != 1 {
			return "", nil
		}
		return resp.Choices[0].Text, nil
	}
	want, err := ask("kjv-a")
	if err != nil || want == "" {
		t.Fatalf("before: %q, %v", want, err)
	}
	for _, change := range []struct {
		name string
		do   func() error
	}{
		{"truncated to zero", func() error { return os.Truncate(a, 0) }},
		{"rewritten with other bytes", func() error { return os.WriteFile(a, []byte(strings.Repeat("U", file.Len())), 0o600) }},
	} {
		if err := change.do(); err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"kjv-a", "kjv-b"} {
			if got, err := ask(m); err != nil || got != want {
				t.Errorf("kjv-a %s: %s answered %q, %v; want %q as before", change.name, m, got, err, want)
			}
		}
		select {
		case <-s.Done():
			t.Fatalf("serve exited after kjv-a was %s: %v\nstderr:\n%s", change.name, s.ExitErr(), crash(s.Stderr()))
		default:
		}
	}
}

// crash is the start of a Go crash report in stderr (the signal and the
// faulting goroutine), or its end when there is none.
func crash(stderr string) string {
	if i := strings.Index(stderr, "fatal error"); i >= 0 {
		stderr = stderr[i:]
		return stderr[:min(len(stderr), 1500)]
	}
	return stderr[max(0, len(stderr)-1500):]
}

// TestModelNotARegularFile: --model naming a FIFO used to block serve in
// open(2) before it listened, for good and deaf to SIGTERM; a device got a
// misleading "too short" error. Both stop serve at once with an error that
// names the path and says it is not a regular file.
func TestModelNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "model.gguf")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, "/dev/zero"} {
		// A bound, not a timing assertion: the failure being tested is a
		// hang, and a killed process fails the test below.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, llmctltest.Binary(t), "serve", "--listen", "127.0.0.1:0", "--admin-listen", "off",
			"--db", "sqlite:"+filepath.Join(t.TempDir(), "x.db"), "--model", path)
		out, err := cmd.CombinedOutput()
		hung := ctx.Err() != nil
		cancel()
		if hung {
			t.Fatalf("serve --model %s did not exit: killed after the bound\n%s", path, out)
		}
		if err == nil || !strings.Contains(string(out), path) || !strings.Contains(string(out), "not a regular file") {
			t.Errorf("serve --model %s: err=%v, output:\n%s\nwant a failure naming the path, not a regular file", path, err, out)
		}
	}
}
