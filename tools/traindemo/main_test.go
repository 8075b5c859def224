package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve/engine/demo"
	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
)

// TestRun trains a tiny model from a corpus file in `bible -f` form and
// checks what the command writes: a GGUF demo model and the held-out verses.
func TestRun(t *testing.T) {
	src, err := os.ReadFile("../../pkg/serve/engine/demo/testdata/heldout.txt")
	if err != nil {
		t.Fatal(err)
	}
	var corpus strings.Builder
	for i, v := range strings.Split(strings.TrimSpace(string(src)), "\n") {
		corpus.WriteString("Ge1:" + string(rune('1'+i%9)) + " " + v + "\n")
	}
	dir := t.TempDir()
	in, out, held := filepath.Join(dir, "kjv.txt"), filepath.Join(dir, "m.gguf"), filepath.Join(dir, "held.txt")
	if err := os.WriteFile(in, []byte(corpus.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-corpus", in, "-out", out, "-heldout", held, "-steps", "5", "-vocab", "400", "-embd", "32", "-ff", "32", "-batch", "2"}
	if err := run(t.Context(), args, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if name, _ := f.String("general.name"); name != demo.Name {
		t.Fatalf("general.name %q", name)
	}
	h, err := os.ReadFile(held)
	if err != nil {
		t.Fatal(err)
	}
	n := strings.Count(string(src), "\n")
	if got := strings.Count(string(h), "\n"); got != n/demo.HeldOut {
		t.Fatalf("%d held-out verses of %d, want every %dth", got, n, demo.HeldOut)
	}
	if err := run(t.Context(), []string{"-out", out}, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("no -corpus: no error")
	}
}
