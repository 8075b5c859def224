package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/serve"
)

// writeDemoFile writes the demo model to dir/name and returns its path.
func writeDemoFile(t *testing.T, dir, name string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteDemo(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testOptions: two threads, so the kernels' worker goroutines read the
// weights too.
func testOptions() Options {
	return Options{Threads: 2, Context: 128, Logger: slog.New(slog.DiscardHandler)}
}

func openT(t *testing.T, path string) *Backend {
	t.Helper()
	b, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// complete returns the greedy completion of prompt, or the error.
func complete(b *Backend, prompt string) (string, error) {
	body, _ := json.Marshal(map[string]any{"prompt": prompt, "max_tokens": 8, "temperature": 0})
	resp, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointCompletions, Body: body})
	if err != nil {
		return "", err
	}
	var a struct {
		Choices []struct{ Text string } `json:"choices"`
	}
	if err := json.Unmarshal(resp.Body, &a); err != nil || len(a.Choices) != 1 {
		return "", err
	}
	return a.Choices[0].Text, nil
}

// TestFileChangedWhileServing: a model file rewritten in place (what `cp`
// over it does: truncate, then write) or truncated while it is served
// changes nothing for its model, which answers from what it loaded, nor for
// another model in the process. With the file memory-mapped, the rewrite
// silently changed the weights under the running model and the truncation
// killed the process with SIGBUS.
func TestFileChangedWhileServing(t *testing.T) {
	dir := t.TempDir()
	pathA := writeDemoFile(t, dir, "a.gguf")
	a, b := openT(t, pathA), openT(t, writeDemoFile(t, dir, "b.gguf"))
	const prompt = "And God said"
	want, err := complete(a, prompt)
	if err != nil || want == "" {
		t.Fatalf("before: %q, %v", want, err)
	}
	st, err := os.Stat(pathA)
	if err != nil {
		t.Fatal(err)
	}
	for _, change := range []struct {
		name string
		do   func() error
	}{
		{"rewritten in place with other bytes", func() error {
			return os.WriteFile(pathA, bytes.Repeat([]byte{0x55}, int(st.Size())), 0o600)
		}},
		{"truncated to half", func() error { return os.Truncate(pathA, st.Size()/2) }},
		{"truncated to zero", func() error { return os.Truncate(pathA, 0) }},
	} {
		if err := change.do(); err != nil {
			t.Fatal(err)
		}
		for _, m := range []*Backend{a, b} {
			got, err := complete(m, prompt)
			if err != nil || got != want {
				t.Errorf("file a %s: %s answered %q, %v; want %q as before", change.name, m.Name(), got, err, want)
			}
		}
	}
}

// TestOpenRefusesNonRegularFiles: a FIFO blocked open(2) until a writer
// came (forever, deaf to SIGTERM) and a device or a directory failed with a
// misleading message; each is refused at once, naming the path and what it
// is.
func TestOpenRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "model.gguf")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Should Open block on the FIFO, opening its other end lets it go so
	// the test ends.
	t.Cleanup(func() {
		if fd, err := syscall.Open(fifo, syscall.O_RDWR|syscall.O_NONBLOCK, 0); err == nil {
			_ = syscall.Close(fd)
		}
	})
	for _, c := range []struct{ path, kind string }{
		{fifo, "named pipe"},
		{"/dev/zero", "device"},
		{dir, "directory"},
	} {
		done := make(chan error, 1)
		go func() {
			b, err := Open(c.path, Options{Threads: 1, Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				_ = b.Close()
			}
			done <- err
		}()
		// A bound, not a timing assertion: the failure being tested is a
		// hang.
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), "not a regular file") ||
				!strings.Contains(err.Error(), c.kind) {
				t.Errorf("Open(%s) = %v; want an error naming the path and saying it is a %s, not a regular file", c.path, err, c.kind)
			}
		case <-time.After(time.Minute):
			t.Errorf("Open(%s) did not return within a minute", c.path)
		}
	}
}
