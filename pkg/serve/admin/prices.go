package admin

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// PriceJSON is one model's effective price as the ledger charges it: token
// prices in micro-units per 1,000,000 tokens, per request in micro-units.
// Batch is what a batch line of the model is charged (ledger.Price.ForBatch),
// so a client never re-derives the default half price itself.
type PriceJSON struct {
	Object string `json:"object"`
	Model  string `json:"model"`
	// Source is "model" (the prices file names it) or "default" (charged at
	// the default price under unknownModel: default).
	Source           string         `json:"source"`
	InputMicros      int64          `json:"input_micros"`
	CachedInputMicro int64          `json:"cached_input_micros"`
	OutputMicros     int64          `json:"output_micros"`
	PerRequestMicros int64          `json:"per_request_micros"`
	Batch            BatchPriceJSON `json:"batch"`
}

// BatchPriceJSON is a model's batch-line price.
type BatchPriceJSON struct {
	InputMicros      int64 `json:"input_micros"`
	CachedInputMicro int64 `json:"cached_input_micros"`
	OutputMicros     int64 `json:"output_micros"`
	PerRequestMicros int64 `json:"per_request_micros"`
}

// PricesJSON is the whole price list: the policy for unnamed models, the
// default price (the price of every unnamed model under unknownModel:
// default), and each named model.
type PricesJSON struct {
	Object       string      `json:"object"`
	UnknownModel string      `json:"unknown_model"`
	Default      *PriceJSON  `json:"default"`
	Data         []PriceJSON `json:"data"`
}

// Price converts the price back; the effective cached price is explicit, so
// the result charges exactly what the ledger charges (TestPriceRoundTrip).
func (p PriceJSON) Price() ledger.Price {
	c := ledger.Micros(p.CachedInputMicro)
	return ledger.Price{Input: ledger.Micros(p.InputMicros), CachedInput: &c, Output: ledger.Micros(p.OutputMicros),
		PerRequest: ledger.Micros(p.PerRequestMicros)}
}

// BatchPrice is the batch-line price as a ledger.Price.
func (p PriceJSON) BatchPrice() ledger.Price {
	c := ledger.Micros(p.Batch.CachedInputMicro)
	return ledger.Price{Input: ledger.Micros(p.Batch.InputMicros), CachedInput: &c, Output: ledger.Micros(p.Batch.OutputMicros),
		PerRequest: ledger.Micros(p.Batch.PerRequestMicros)}
}

// priceOut renders pr for model.
func priceOut(model, source string, pr ledger.Price) PriceJSON {
	cached := func(p ledger.Price) ledger.Micros {
		if p.CachedInput != nil {
			return *p.CachedInput
		}
		return p.Input
	}
	b := pr.ForBatch()
	return PriceJSON{Object: "price", Model: model, Source: source,
		InputMicros: int64(pr.Input), CachedInputMicro: int64(cached(pr)), OutputMicros: int64(pr.Output), PerRequestMicros: int64(pr.PerRequest),
		Batch: BatchPriceJSON{InputMicros: int64(b.Input), CachedInputMicro: int64(cached(b)), OutputMicros: int64(b.Output), PerRequestMicros: int64(b.PerRequest)}}
}

// listPrices is GET /admin/v1/prices: the whole list, or with ?model= the
// price a request for that model is charged now, under the unknown-model
// policy (a query, not a path segment: model names hold slashes).
func (h *Handler) listPrices(r *http.Request, _ []byte) (int, any, *apiError) {
	if h.prices == nil {
		return 0, nil, billingDisabled()
	}
	p := *h.prices
	out := PricesJSON{Object: "list", UnknownModel: p.UnknownModel, Data: []PriceJSON{}}
	if out.UnknownModel == "" {
		out.UnknownModel = ledger.UnknownReject
	}
	if out.UnknownModel == ledger.UnknownDefault {
		d := priceOut("", "default", p.Default)
		out.Default = &d
	}
	q := r.URL.Query()
	for k := range q {
		if k != "model" {
			return 0, nil, badRequest(k, "unknown query parameter %q; use model", k)
		}
	}
	if !q.Has("model") {
		for _, m := range slices.Sorted(maps.Keys(p.Models)) {
			out.Data = append(out.Data, priceOut(m, "model", p.Models[m]))
		}
		return http.StatusOK, out, nil
	}
	m := q.Get("model")
	pr, err := p.For(m)
	if errors.Is(err, ledger.ErrUnknownModel) {
		return 0, nil, &apiError{Status: http.StatusNotFound, Type: typeNotFound, Code: "model_not_priced", Param: "model",
			Message: fmt.Sprintf("model %q has no price and unknownModel is reject: requests for it are refused until the prices file names it", m)}
	}
	if err != nil {
		return 0, nil, badRequest("model", "%v", err)
	}
	source := "model"
	if _, named := p.Models[m]; !named {
		source = "default"
	}
	out.Data = append(out.Data, priceOut(m, source, pr))
	return http.StatusOK, out, nil
}
