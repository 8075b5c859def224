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
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "traindemo:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := demo.DefaultConfig()
	corpus := flag.String("corpus", "", "verses as printed by `bible -f` (required)")
	out := flag.String("out", "pkg/serve/engine/demo/kjv.gguf", "GGUF file to write")
	held := flag.String("heldout", "pkg/serve/engine/demo/testdata/heldout.txt", "where to write the held-out verses (empty: nowhere)")
	flag.IntVar(&cfg.Steps, "steps", cfg.Steps, "optimizer steps")
	flag.Parse()
	if *corpus == "" {
		return fmt.Errorf("-corpus is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	f, err := os.Open(*corpus)
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
	m, err := demo.Train(ctx, train, cfg, log)
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
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if *held != "" {
		if err := os.WriteFile(*held, []byte(strings.Join(heldOut, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	log.Info("written", "model", *out)
	return nil
}
