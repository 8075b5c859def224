package demo

import (
	"fmt"
	"math"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/model"
	"github.com/llmctl/llmctl/pkg/serve/engine/tokenizer"
)

// EngineNLL is the mean negative log-likelihood (nats per token) of verses
// under the model file f as the engine computes it: each verse after BOS,
// every next token scored. The verses run as one batch, a token each per
// step, so a few hundred take seconds.
func EngineNLL(f *gguf.File, verses []string) (float64, error) {
	m, err := model.Load(f)
	if err != nil {
		return 0, fmt.Errorf("demo: %w", err)
	}
	tok, err := tokenizer.New(f)
	if err != nil {
		return 0, fmt.Errorf("demo: %w", err)
	}
	type seq struct {
		ids    []int32
		cache  *model.Cache
		logits []float32
	}
	var seqs []*seq
	longest := 0
	for _, v := range verses {
		ids := tok.Encode(v, true, false)
		if len(ids) < 2 {
			continue
		}
		if len(ids) > m.Context {
			ids = ids[:m.Context]
		}
		seqs = append(seqs, &seq{ids: ids, cache: m.NewCache(len(ids)), logits: make([]float32, m.Vocab)})
		longest = max(longest, len(ids))
	}
	if len(seqs) == 0 {
		return 0, fmt.Errorf("demo: no tokens to score")
	}
	ws := m.NewWorkspace(1)
	var sum float64
	var n int
	for i := 0; i+1 < longest; i++ {
		var batch []model.Seq
		var live []*seq
		for _, s := range seqs {
			if i+1 < len(s.ids) {
				batch = append(batch, model.Seq{Cache: s.cache, Tokens: s.ids[i : i+1], Logits: s.logits})
				live = append(live, s)
			}
		}
		if err := m.Step(ws, batch); err != nil {
			return 0, fmt.Errorf("demo: %w", err)
		}
		for _, s := range live {
			sum += logSumExp(s.logits) - float64(s.logits[s.ids[i+1]])
			n++
		}
	}
	return sum / float64(n), nil
}

func logSumExp(x []float32) float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(s)
}
