package canary

import (
	"errors"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/preflight"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

// The charge is held to the listed price to the micro-unit: the ledger's
// rounding (up, once, over the sum), the cached-token price and the
// per-request fee; one micro-unit off fails with the remedy.
func TestJudgeCharge(t *testing.T) {
	price := adminclient.Price{Model: "m", InputMicros: 100_000, CachedInputMicro: 10_000, OutputMicros: 300_001, PerRequestMicros: 7}
	ans := Answer{Model: "m", Prompt: 30, Completion: 5}
	// 10×100,000 + 20×10,000 + 5×300,001 = 2,700,005 → ceil(/1e6) = 3, + 7 = 10;
	// the 20 cached tokens at the input price would be 12.
	entry := func(amount, cached int64) adminclient.Entry {
		return adminclient.Entry{Kind: "debit", Amount: "-0.0000xx", AmountMicros: -amount, PromptTokens: 30, CompletionTokens: 5, CachedPromptTokens: cached}
	}
	for _, c := range []struct {
		name    string
		e       adminclient.Entry
		ans     Answer
		perr    error
		verdict preflight.Verdict
		msg     string
	}{
		{"exact", entry(10, 20), ans, nil, preflight.Pass, "exactly its price"},
		{"one micro-unit over", entry(11, 20), ans, nil, preflight.Fail, "the price list says it costs 0.000010"},
		{"one micro-unit under", entry(9, 20), ans, nil, preflight.Fail, "the price list says it costs 0.000010"},
		{"cached tokens ignored", entry(10, 0), ans, nil, preflight.Fail, "the price list says it costs 0.000012"},
		{"tokens disagree", entry(10, 20), Answer{Model: "m", Prompt: 30, Completion: 6}, nil, preflight.Fail, "the answer said 30+6"},
		{"free", entry(0, 0), ans, nil, preflight.Fail, "served for free"},
		{"no price list", entry(10, 20), ans, errors.New("unknown URL (404)"), preflight.Warn, "the amount is not checked"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := judgeCharge(c.e, c.ans, price, c.perr)
			if o.Verdict != c.verdict || !strings.Contains(o.Message, c.msg) || (c.verdict != preflight.Pass && o.Remedy == "") {
				t.Fatalf("%+v; want %v with %q and a remedy", o, c.verdict, c.msg)
			}
		})
	}
}
