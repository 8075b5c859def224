package ledger

import (
	"fmt"
	"math/bits"
	"os"

	"sigs.k8s.io/yaml"

	"github.com/llmctl/llmctl/internal/decodeerr"
	"github.com/llmctl/llmctl/pkg/billing"
)

// Price is what one model costs, in micro-units per 1,000,000 tokens.
type Price struct {
	Input  Micros `json:"input"`
	Output Micros `json:"output"`
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
		if pr.Input < 0 || pr.Output < 0 {
			return fmt.Errorf("prices: %s: negative price", name)
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

// Cost is the charge for usage at this price, rounded up to a whole micro-unit
// (a request never costs less than what it used). It computes in 128 bits, so
// it is exact; a result beyond int64 is an error.
func (pr Price) Cost(u billing.Usage) (Micros, error) {
	if u.PromptTokens < 0 || u.CompletionTokens < 0 {
		return 0, fmt.Errorf("negative token count %+v", u)
	}
	hi1, lo1 := bits.Mul64(uint64(u.PromptTokens), uint64(pr.Input))
	hi2, lo2 := bits.Mul64(uint64(u.CompletionTokens), uint64(pr.Output))
	lo, carry := bits.Add64(lo1, lo2, 0)
	hi, _ := bits.Add64(hi1, hi2, carry)
	lo, carry = bits.Add64(lo, 999_999, 0)
	hi += carry
	if hi >= 1_000_000 {
		return 0, fmt.Errorf("cost of %+v overflows", u)
	}
	q, _ := bits.Div64(hi, lo, 1_000_000)
	if q > 1<<63-1 {
		return 0, fmt.Errorf("cost of %+v overflows", u)
	}
	return Micros(q), nil
}

// ParsePrices reads a prices document (YAML or JSON); unknown keys are errors.
//
//	unknownModel: default      # or reject (the default)
//	default: {input: 500000, output: 1500000}
//	models:
//	  llama3: {input: 200000, output: 600000}
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
