package main

import (
	"errors"
	"log/slog"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// warnUnpriced returns the gateway's OnNewModels for billing: it names the
// served models that have no price under the reject policy, at start and
// when a backend starts serving one, since every request to them is refused
// (403 model_not_priced) until the prices file names them.
func warnUnpriced(p ledger.Prices, log *slog.Logger) func([]string) {
	return func(models []string) {
		var unpriced []string
		for _, m := range models {
			if _, err := p.For(m); errors.Is(err, ledger.ErrUnknownModel) {
				unpriced = append(unpriced, m)
			}
		}
		if len(unpriced) > 0 {
			log.Warn("served models have no price; every request to them is refused (403 model_not_priced) until --prices names them or sets unknownModel: default",
				"models", unpriced)
		}
	}
}
