package engine

import (
	_ "embed" // the demo model file
	"fmt"
	"io"
	"strings"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
)

// DemoName is the bundled demo model's name: a tiny llama trained on the
// King James Bible by pkg/serve/engine/demo (`make demo-model`). It
// continues any prompt in King James English, which is enough to see the
// whole path (keys, limits, billing, streaming) work end to end; it knows
// nothing else. "ngram" because its attention is fixed to the last seven
// tokens plus an average of the context (see docs/engine.md, "Demo model").
const DemoName = "demo-kjv-ngram"

// demoFile is the GGUF file, written by the trainer and committed.
//
//go:embed demo/kjv.gguf
var demoFile string

// WriteDemo writes the demo model's GGUF file: what OpenDemo serves, for
// tests and for anyone who wants to look at it with other tools.
func WriteDemo(w io.Writer) error {
	_, err := io.Copy(w, strings.NewReader(demoFile))
	return err
}

// OpenDemo loads the bundled demo model and serves it as DemoName.
func OpenDemo(opts Options) (*Backend, error) {
	f, err := gguf.Parse([]byte(demoFile))
	if err != nil {
		return nil, fmt.Errorf("engine: demo model: %w", err)
	}
	if opts.Name == "" {
		opts.Name = DemoName
	}
	return newBackend(f, func() error { return nil }, opts)
}
