package engine_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve/engine"
	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/internal/llamaref"
	"github.com/llmctl/llmctl/pkg/serve/engine/synth"
)

// openRandomModel writes a seeded random-weight model of shape s with the
// real vocabulary in llama.cpp's vocabFile and opens it: a model whose
// unconstrained output is noise, for the grammar's tests and benchmark.
func openRandomModel(tb testing.TB, vocabFile string, s synth.Shape, seed uint64, threads int) *engine.Backend {
	tb.Helper()
	v, err := gguf.Open(filepath.Join(llamaref.VocabDir(tb), vocabFile))
	if err != nil {
		tb.Fatal(err)
	}
	defer v.Close()
	path := filepath.Join(tb.TempDir(), "random.gguf")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := synth.Write(f, s, v.File, seed); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	be, err := engine.Open(path, engine.Options{Threads: threads, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	return be
}
