// Command traindemo trains llmctl's bundled demo model on the King James
// Bible and writes it as GGUF (see pkg/serve/engine/demo and `make
// demo-model`). Input is the output of `bible -f Genesis1:1-Revelation22:21`
// from Debian's bible-kjv package.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/serve/engine/demo"
	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], log); err != nil {
		fmt.Fprintln(os.Stderr, "traindemo:", err)
		os.Exit(1)
	}
}

// options are the command line; the shape flags exist for quick test runs,
// the defaults are the shipped model.
type options struct {
	corpus, out, heldOut string
	cfg                  demo.Config
}

func parse(args []string) (*options, error) {
	o := &options{cfg: demo.DefaultConfig()}
	fs := flag.NewFlagSet("traindemo", flag.ContinueOnError)
	fs.StringVar(&o.corpus, "corpus", "", "verses as printed by `bible -f` (required)")
	fs.StringVar(&o.out, "out", "pkg/serve/engine/demo/kjv.gguf", "GGUF file to write")
	fs.StringVar(&o.heldOut, "heldout", "pkg/serve/engine/demo/testdata/heldout.txt", "where to write the held-out verses (empty: nowhere)")
	fs.IntVar(&o.cfg.Steps, "steps", o.cfg.Steps, "optimizer steps")
	fs.IntVar(&o.cfg.Vocab, "vocab", o.cfg.Vocab, "vocabulary size")
	fs.IntVar(&o.cfg.Embd, "embd", o.cfg.Embd, "embedding width")
	fs.IntVar(&o.cfg.FF, "ff", o.cfg.FF, "feed-forward width")
	fs.IntVar(&o.cfg.Batch, "batch", o.cfg.Batch, "sequences per step")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.corpus == "" {
		return nil, fmt.Errorf("-corpus is required")
	}
	return o, nil
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	f, err := os.Open(o.corpus)
	if err != nil {
		return err
	}
	verses, err := demo.ReadVerses(f)
	_ = f.Close()
	if err != nil {
		return err
	}
	train, heldOut := demo.Split(verses)
	log.Info("corpus", "verses", len(verses), "train", len(train), "held_out", len(heldOut))
	start := time.Now()
	m, err := demo.Train(ctx, train, o.cfg, log)
	if err != nil {
		return err
	}
	nll, err := m.NLL(heldOut)
	if err != nil {
		return err
	}
	log.Info("trained", "elapsed", time.Since(start).Round(time.Second), "train_loss", fmt.Sprintf("%.3f", m.Loss),
		"heldout_nll", fmt.Sprintf("%.3f", nll), "heldout_ppl", fmt.Sprintf("%.1f", math.Exp(nll)),
		"uniform_ppl", len(m.Vocab.Tokens))
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		return err
	}
	// the written file as the engine serves it (F16/Q8_0 weights)
	gf, err := gguf.Parse(buf.Bytes())
	if err != nil {
		return err
	}
	served, err := demo.EngineNLL(gf, heldOut)
	if err != nil {
		return err
	}
	log.Info("engine on the written file", "heldout_nll", fmt.Sprintf("%.3f", served),
		"heldout_ppl", fmt.Sprintf("%.1f", math.Exp(served)), "bytes", buf.Len())
	if err := os.WriteFile(o.out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if o.heldOut != "" {
		if err := os.WriteFile(o.heldOut, []byte(strings.Join(heldOut, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	log.Info("written", "model", o.out)
	return nil
}
