package ledger

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"

	"github.com/llmctl/llmctl/internal/decodeerr"
	"github.com/llmctl/llmctl/pkg/billing"
)

// Price is what one model costs: Input, CachedInput and Output in
// micro-units per 1,000,000 tokens, PerRequest in micro-units per request.
type Price struct {
	Input  Micros `json:"input"`
	Output Micros `json:"output"`
	// CachedInput prices the prompt tokens the backend served from its
	// prefix cache (a subset of the prompt tokens, charged at this price
	// instead of Input). Unset means Input: no discount.
	CachedInput *Micros `json:"cachedInput,omitempty"`
	// PerRequest is a flat amount added to every request that used any
	// token (and to every reservation).
	PerRequest Micros `json:"perRequest,omitempty"`
	// Batch prices the tokens of batch lines (batchprice.go); unset is
	// half of Input and Output.
	Batch *BatchPrice `json:"batch,omitempty"`
}

// Unknown-model policies.
const (
	// UnknownReject refuses requests for a model without a price.
	UnknownReject = "reject"
	// UnknownDefault charges a model without a price at Prices.Default.
	UnknownDefault = "default"
)

// Prices maps models to prices. A model absent from Models is refused
// (UnknownModel "reject", the default) or charged at Default ("default").
type Prices struct {
	Models       map[string]Price `json:"models,omitempty"`
	Default      Price            `json:"default"`
	UnknownModel string           `json:"unknownModel,omitempty"`
}

// ErrUnknownModel is returned for a model without a price under the reject policy.
// It is billing.ErrModelNotPriced, so the gateway can answer it without
// importing the ledger.
var ErrUnknownModel = billing.ErrModelNotPriced

// Validate checks the policy and that no price is negative.
func (p Prices) Validate() error {
	switch p.UnknownModel {
	case "", UnknownReject, UnknownDefault:
	default:
		return fmt.Errorf("prices: unknownModel %q: want %q or %q", p.UnknownModel, UnknownReject, UnknownDefault)
	}
	check := func(name string, pr Price) error {
		if pr.Input < 0 || pr.Output < 0 || pr.PerRequest < 0 || pr.CachedInput != nil && *pr.CachedInput < 0 ||
			pr.Batch != nil && (pr.Batch.Input < 0 || pr.Batch.Output < 0) {
			return fmt.Errorf("prices: %s: negative price", name)
		}
		// A reservation prices the whole prompt at Input, which is only the
		// most it can cost if a cached token never costs more.
		if pr.cachedInput() > pr.Input {
			return fmt.Errorf("prices: %s: cachedInput %d is above input %d; a cached token must not cost more", name, pr.cachedInput(), pr.Input)
		}
		return nil
	}
	if err := check("default", p.Default); err != nil {
		return err
	}
	for m, pr := range p.Models {
		if err := check(fmt.Sprintf("model %q", m), pr); err != nil {
			return err
		}
	}
	return nil
}

// For returns the price of model under the policy.
func (p Prices) For(model string) (Price, error) {
	if pr, ok := p.Models[model]; ok {
		return pr, nil
	}
	if p.UnknownModel == UnknownDefault {
		return p.Default, nil
	}
	return Price{}, fmt.Errorf("%w %q", ErrUnknownModel, model)
}

// ParsePrices reads a prices document (YAML or JSON); unknown keys are errors.
//
//	unknownModel: default      # or reject (the default)
//	default: {input: 500000, output: 1500000}
//	models:
//	  llama3: {input: 200000, output: 600000}
//	  qwen: {input: 200000, cachedInput: 50000, output: 600000, perRequest: 100}
func ParsePrices(data []byte) (Prices, error) {
	var p Prices
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return Prices{}, fmt.Errorf("prices: %w", decodeerr.WrapJSON(err))
	}
	if err := p.Validate(); err != nil {
		return Prices{}, err
	}
	return p, nil
}

// LoadPrices reads a prices file.
func LoadPrices(path string) (Prices, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Prices{}, fmt.Errorf("prices: %w", err)
	}
	p, err := ParsePrices(data)
	if err != nil {
		return Prices{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}
