package ledger_test

import (
	"testing"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

func TestBatchPrice(t *testing.T) {
	p, err := ledger.ParsePrices([]byte(`
models:
  half: {input: 1000001, cachedInput: 400001, output: 3000000, perRequest: 7}
  set: {input: 1000000, cachedInput: 900000, output: 3000000, batch: {input: 600000, output: 1000000}}
`))
	if err != nil {
		t.Fatal(err)
	}
	half := p.Models["half"].ForBatch()
	if half.Input != 500000 || half.Output != 1500000 || *half.CachedInput != 200000 || half.PerRequest != 7 || half.Batch != nil {
		t.Fatalf("default batch price %+v", half)
	}
	set := p.Models["set"].ForBatch()
	// A cached token never costs more than the batch input price.
	if set.Input != 600000 || set.Output != 1000000 || *set.CachedInput != 600000 {
		t.Fatalf("configured batch price %+v", set)
	}
	// 3 prompt + 2 completion tokens at the default batch price:
	// ceil((3×500,000 + 2×1,500,000) / 10^6) + 7 = ceil(4.5) + 7 = 12.
	if c, err := half.Cost(billing.Usage{PromptTokens: 3, CompletionTokens: 2}); err != nil || c != 12 {
		t.Fatalf("cost %d %v, want 12", c, err)
	}
	if _, err := ledger.ParsePrices([]byte(`models: {m: {input: 1, output: 1, batch: {input: -1, output: 1}}}`)); err == nil {
		t.Fatal("a negative batch price was accepted")
	}
	if _, err := ledger.ParsePrices([]byte(`models: {m: {input: 1, output: 1, batch: {input: 1, outptu: 1}}}`)); err == nil {
		t.Fatal("an unknown batch field was accepted")
	}
}
