package demo

import (
	"math"
	"testing"
)

// TestGradients compares backward's gradients with central differences of
// the loss on a tiny model: every trained matrix, a few entries each.
func TestGradients(t *testing.T) {
	cfg := Config{Vocab: 40, Embd: 16, Heads: 4, FF: 24, Context: 64, RopeBase: 10, SeqLen: 12, Batch: 1, Steps: 1, LR: 1e-3, Seed: 7}
	n, err := newNet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tokens := []int32{1, 5, 9, 33, 5, 12, 7, 7, 20, 39, 3, 4}
	targets := []int32{5, 9, 33, 5, 12, 7, 7, 20, 39, 3, 4}
	w := n.newWork()
	loss := func() float64 {
		n.forward(w, tokens)
		var s float64
		for i, y := range targets {
			s -= math.Log(float64(w.logits[i][y]))
		}
		return s
	}
	n.forward(w, tokens)
	n.backward(w, tokens, targets, 1)
	// the embedding is trained on its constraint surface; check the
	// directions that keep the first dimension (others are projected away)
	for _, p := range n.params {
		for _, i := range []int{1, len(p.w) / 3, len(p.w)/2 + 1, len(p.w) - 1} {
			if p == n.embed && i%p.cols == 0 {
				continue
			}
			old := p.w[i]
			const h = 1e-2
			p.w[i] = old + h
			up := loss()
			p.w[i] = old - h
			down := loss()
			p.w[i] = old
			num := (up - down) / (2 * h)
			got := float64(p.g[i])
			if math.Abs(num-got) > 2e-3+0.03*math.Abs(num) {
				t.Errorf("param %dx%d [%d]: backward %.5f, numeric %.5f", p.rows, p.cols, i, got, num)
			}
		}
	}
}

// TestAttentionPattern checks the fixed heads: head k puts its weight on
// the token k back wherever there is one, the last head averages.
func TestAttentionPattern(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Vocab, cfg.SeqLen = 300, 40
	n, err := newNet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for h, pat := range n.pattern {
		for tt, ws := range pat {
			if h == cfg.Heads-1 {
				if len(ws) != tt+1 {
					t.Fatalf("average head at %d has %d weights", tt, len(ws))
				}
				continue
			}
			k := h + 1
			if tt >= k && (len(ws) != 1 || ws[0].s != tt-k || ws[0].w < 0.999999) {
				t.Fatalf("head %d at position %d: weights %+v, want all on %d", h, tt, ws, tt-k)
			}
		}
	}
}
