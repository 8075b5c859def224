package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"
)

// Model is a trained demo model, ready to be written as GGUF.
type Model struct {
	Vocab *Vocab
	net   *net
	// TrainTokens is the number of corpus tokens trained on.
	TrainTokens int
	// Loss is the mean training loss (nats per token) over the last tenth
	// of the steps.
	Loss float64
}

// Train learns a vocabulary from verses and trains the model on them.
func Train(ctx context.Context, verses []string, cfg Config, log *slog.Logger) (*Model, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	voc, err := BuildVocab(verses, cfg.Vocab)
	if err != nil {
		return nil, err
	}
	cfg.Vocab = len(voc.Tokens) // a small corpus may run out of merges
	tok, err := voc.Tokenizer()
	if err != nil {
		return nil, err
	}
	var stream []int32
	for _, v := range verses {
		stream = append(stream, tok.Encode(v, false, false)...)
	}
	log.Info("vocabulary learned", "tokens", cfg.Vocab, "corpus_tokens", len(stream), "elapsed", time.Since(start).Round(time.Millisecond))
	n, err := newNet(cfg)
	if err != nil {
		return nil, err
	}
	// sequences: BOS then SeqLen-1 consecutive corpus tokens
	L := cfg.SeqLen - 1
	var seqs [][]int32
	for i := 0; i+L+1 <= len(stream); i += L {
		s := append([]int32{tokBOS}, stream[i:i+L+1]...) // one more: the last target
		seqs = append(seqs, s)
	}
	if len(seqs) == 0 {
		return nil, fmt.Errorf("demo: corpus of %d tokens is shorter than one sequence of %d", len(stream), cfg.SeqLen)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed+1, cfg.Seed^0xda3e39cb94b95bdb))
	order := rng.Perm(len(seqs))
	w := n.newWork()
	next := 0
	var tail, tailN float64
	for step := range cfg.Steps {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("demo: training stopped: %w", err)
		}
		lr := schedule(cfg.LR, step, cfg.Steps)
		var nll float64
		scale := 1 / float32(cfg.Batch*cfg.SeqLen)
		for range cfg.Batch {
			if next == len(order) {
				order, next = rng.Perm(len(seqs)), 0
			}
			s := seqs[order[next]]
			next++
			n.forward(w, s[:cfg.SeqLen])
			nll += n.backward(w, s[:cfg.SeqLen], s[1:], scale)
		}
		n.adam(lr)
		loss := nll / float64(cfg.Batch*cfg.SeqLen)
		if step >= cfg.Steps-max(cfg.Steps/10, 1) {
			tail += loss
			tailN++
		}
		if step%50 == 0 || step == cfg.Steps-1 {
			log.Info("training", "step", step, "of", cfg.Steps, "loss", fmt.Sprintf("%.3f", loss),
				"lr", lr, "elapsed", time.Since(start).Round(time.Second))
		}
	}
	m := &Model{Vocab: voc, net: n, TrainTokens: cfg.Steps * cfg.Batch * cfg.SeqLen}
	if tailN > 0 {
		m.Loss = tail / tailN
	}
	return m, nil
}

// schedule warms the rate up over the first 5% of steps, then decays it
// along a cosine to a tenth.
func schedule(peak float32, step, steps int) float32 {
	warm := max(steps/20, 1)
	if step < warm {
		return peak * float32(step+1) / float32(warm)
	}
	f := float64(step-warm) / float64(max(steps-warm, 1))
	return peak * float32(0.1+0.9*0.5*(1+math.Cos(math.Pi*f)))
}

// NLL returns the model's mean negative log-likelihood (nats per token) of
// verses, with the training-time forward pass (the GGUF file rounds the
// weights; tests measure the served file with the engine itself).
func (m *Model) NLL(verses []string) (float64, error) {
	tok, err := m.Vocab.Tokenizer()
	if err != nil {
		return 0, err
	}
	w := m.net.newWork()
	var sum float64
	var count int
	for _, v := range verses {
		ids := append([]int32{tokBOS}, tok.Encode(v, false, false)...)
		for len(ids) > 1 {
			seg := ids[:min(len(ids), m.net.cfg.SeqLen)]
			m.net.forward(w, seg)
			for t := range len(seg) - 1 {
				sum -= logProb(w.logits[t][seg[t+1]])
				count++
			}
			ids = ids[len(seg)-1:]
		}
	}
	if count == 0 {
		return 0, fmt.Errorf("demo: no tokens to score")
	}
	return sum / float64(count), nil
}

// WriteTo writes the model as a GGUF file.
func (m *Model) WriteTo(w io.Writer) (int64, error) { return m.write(w) }
