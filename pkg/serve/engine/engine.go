// Package engine is llmctl's embedded CPU inference backend: it loads a
// llama-family GGUF model (F32/F16/Q8_0/Q4_0/Q4_K/Q6_K tensors), tokenizes
// with the model's own vocabulary, renders chat templates, and serves OpenAI
// chat/completions, completions and (mean-pooled) embeddings requests
// through serve.Backend, with all concurrent requests batched into shared
// steps.
//
// Subpackages: gguf (file format), tokenizer, quant (encodings and dot
// products), model (forward pass), sample, chat, synth (random-weight test
// models).
package engine

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine/chat"
	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/model"
	"github.com/llmctl/llmctl/pkg/serve/engine/tokenizer"
)

// Options configure a Backend.
type Options struct {
	// Name is the model name clients ask for; default: the file name
	// without .gguf.
	Name string
	// Threads computing each step; default: the number of CPUs.
	Threads int
	// Context is the token capacity of each request (prompt + completion);
	// default: the model's context length, at most 4096.
	Context int
	// MaxActive is how many requests decode together; more wait in line.
	// Default 8.
	MaxActive int
	// PrefillChunk bounds the prompt tokens processed per step, so long
	// prompts do not stall other requests' decoding. Default 64.
	PrefillChunk int
	Logger       *slog.Logger
}

// Backend serves one model file. It implements serve.Backend.
type Backend struct {
	name   string
	closer func() error // releases the model file
	m      *model.Model
	tok    *tokenizer.Tokenizer
	format chat.Format    // the hand-written fallback (stops; prompt when tmpl is nil)
	tmpl   *chat.Template // the model's own chat template, when it has one that compiles
	sched  *scheduler
	closed chan struct{} // closed by Close: no more submissions
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

var (
	_ serve.Backend = (*Backend)(nil)
	_ serve.Slotted = (*Backend)(nil)
)

// Slots is how many requests decode together (Options.MaxActive): the
// gateway queues the rest in its admission queue.
func (b *Backend) Slots() int { return b.sched.maxActive }

// Open loads a GGUF model into memory (a copy: the file may change or go
// away afterwards) and starts its scheduler. Close releases it.
func Open(path string, opts Options) (*Backend, error) {
	return OpenContext(context.Background(), path, opts)
}

// OpenContext is Open, giving up the file's read once ctx is done, so that
// a shutdown signal during the load of a large model is not held off.
func OpenContext(ctx context.Context, path string, opts Options) (*Backend, error) {
	f, err := gguf.OpenContext(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if opts.Name == "" {
		opts.Name = strings.TrimSuffix(filepath.Base(path), ".gguf")
	}
	b, err := newBackend(f.File, f.Close, opts)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("engine: %s: %w", path, err)
	}
	// The model holds packed copies of these: without this their file bytes
	// would stay resident beside them, most of a Q4 model twice.
	for _, name := range b.m.Repacked() {
		if ti, ok := f.Tensor(name); ok {
			if err := f.Release(ti); err != nil {
				b.sched.log.Warn("engine: could not release memory of a repacked tensor", "model", b.name, "err", err)
			}
		}
	}
	return b, nil
}

func newBackend(f *gguf.File, closer func() error, opts Options) (*Backend, error) {
	m, err := model.Load(f)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.New(f)
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() != m.Vocab {
		return nil, fmt.Errorf("%w: tokenizer has %d tokens, the embedding %d", model.ErrModel, tok.VocabSize(), m.Vocab)
	}
	if opts.Threads <= 0 {
		opts.Threads = runtime.NumCPU()
	}
	if opts.Context <= 0 {
		opts.Context = min(m.Context, 4096)
	}
	if opts.MaxActive <= 0 {
		opts.MaxActive = 8
	}
	if opts.PrefillChunk <= 0 {
		opts.PrefillChunk = 64
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	tmpl, _ := f.String("tokenizer.chat_template")
	b := &Backend{
		name: opts.Name, closer: closer, m: m, tok: tok,
		format: chat.Detect(tmpl, func(s string) bool { _, ok := tok.Lookup(s); return ok }),
		closed: make(chan struct{}),
	}
	chatFormat := string(b.format)
	if tmpl != "" {
		// A template the renderer cannot compile is the file's problem, not
		// the requests': serve with the hand-written format and say so.
		t, err := chat.Compile(tmpl, string(tok.Piece(tok.BOS, true)), string(tok.Piece(tok.EOS, true)))
		if err != nil {
			opts.Logger.Warn("engine: the model's chat template does not compile; using a built-in format",
				"model", opts.Name, "format", b.format, "err", err)
		} else {
			b.tmpl, chatFormat = t, "the model's template"
		}
	}
	b.sched = &scheduler{
		m: m, tok: tok, ws: m.NewWorkspace(opts.Threads),
		ctxSize: opts.Context, maxActive: opts.MaxActive, prefillChunk: opts.PrefillChunk,
		submit: make(chan *job), log: opts.Logger, vocab: grammarVocab(tok),
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.sched.run(ctx)
	}()
	opts.Logger.Info("engine model loaded", "model", b.name, "arch", m.Arch, "layers", m.Layers,
		"embd", m.Embd, "vocab", m.Vocab, "context", opts.Context, "threads", opts.Threads, "chat_format", chatFormat)
	return b, nil
}

// Close stops the scheduler (failing requests in flight) and frees the
// model's memory.
func (b *Backend) Close() error {
	close(b.closed)
	b.stop()
	b.wg.Wait()
	return b.closer()
}

// Name identifies the backend.
func (b *Backend) Name() string { return "engine:" + b.name }

// Models lists the one model this backend serves.
func (b *Backend) Models(context.Context) ([]string, error) { return []string{b.name}, nil }

// Tokenizer exposes the model's tokenizer (for usage counting).
func (b *Backend) Tokenizer() *tokenizer.Tokenizer { return b.tok }
