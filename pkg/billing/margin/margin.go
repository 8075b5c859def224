// Package margin prices what the box cost over a window (electricity from
// the GPUs' measured energy, plus fixed monthly costs prorated) and sets it
// against what the ledger charged, per tenant and model. Cost is attributed
// by share of generated tokens (docs/economics.md has the formulas).
package margin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// HoursPerMonth prorates monthly costs: 365 × 24 / 12.
const HoursPerMonth = 730

// Costs is the `costs:` section of the configuration, in currency units
// ("0.30"), the ledger's currency.
type Costs struct {
	// ElectricityPerKWh prices the GPUs' measured energy.
	ElectricityPerKWh string `yaml:"electricityPerKWh" json:"electricityPerKWh,omitempty"`
	// GPUMonthly is the GPUs' rent or amortisation per month.
	GPUMonthly string `yaml:"gpuMonthly" json:"gpuMonthly,omitempty"`
	// OtherMonthly is the rest of the box per month: host, network, rack.
	OtherMonthly string `yaml:"otherMonthly" json:"otherMonthly,omitempty"`
}

// parsed are Costs in micro-units.
type parsed struct{ perKWh, gpuMonthly, otherMonthly ledger.Micros }

func (c Costs) parse() (parsed, error) {
	var p parsed
	var errs []error
	for _, f := range []struct {
		name string
		s    string
		dst  *ledger.Micros
	}{{"costs.electricityPerKWh", c.ElectricityPerKWh, &p.perKWh}, {"costs.gpuMonthly", c.GPUMonthly, &p.gpuMonthly},
		{"costs.otherMonthly", c.OtherMonthly, &p.otherMonthly}} {
		if strings.TrimSpace(f.s) == "" {
			continue
		}
		v, err := ledger.ParseMicros(f.s)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
		case v < 0:
			errs = append(errs, fmt.Errorf("%s: must not be negative", f.name))
		}
		*f.dst = v
	}
	return p, errors.Join(errs...)
}

// Validate checks every amount.
func (c Costs) Validate() error {
	_, err := c.parse()
	return err
}

// Usage is one tenant's charges for one model over the window.
type Usage struct {
	TenantID  string        `json:"tenantId"`
	Model     string        `json:"model"`
	Revenue   ledger.Micros `json:"revenueMicros"`
	Prompt    int64         `json:"promptTokens"`
	Generated int64         `json:"generatedTokens"`
	Requests  int64         `json:"requests"`
}

// FromLedger sums debits and releases in [since, until] per tenant and
// model: revenue is what was charged.
func FromLedger(ctx context.Context, l ledger.EntryLister, since, until time.Time) ([]Usage, error) {
	type k struct{ tenant, model string }
	m := map[k]*Usage{}
	err := ledger.Walk(ctx, l, ledger.Filter{Since: since, Until: until}, func(e ledger.Entry) {
		if e.Kind != ledger.KindDebit && e.Kind != ledger.KindRelease {
			return
		}
		u, ok := m[k{e.TenantID, e.Model}]
		if !ok {
			u = &Usage{TenantID: e.TenantID, Model: e.Model}
			m[k{e.TenantID, e.Model}] = u
		}
		u.Revenue -= e.Amount
		u.Prompt += e.PromptTokens
		u.Generated += e.CompletionTokens
		u.Requests++
	})
	if err != nil {
		return nil, fmt.Errorf("reading the ledger: %w", err)
	}
	out := make([]Usage, 0, len(m))
	for _, u := range m {
		out = append(out, *u)
	}
	return out, nil
}

// Energy is what was measured over the window.
type Energy struct {
	Joules float64 `json:"joules"`
	// Measured is false when no energy figure covers the window: the
	// report then prices fixed costs only and says so in Basis.
	Measured bool `json:"measured"`
	// LowerBound: a counter restarted inside the window.
	LowerBound bool   `json:"lowerBound,omitempty"`
	Note       string `json:"note,omitempty"`
}

// Row is one tenant and model.
type Row struct {
	TenantID  string        `json:"tenantId"`
	Tenant    string        `json:"tenant"`
	Model     string        `json:"model"`
	Requests  int64         `json:"requests"`
	Prompt    int64         `json:"promptTokens"`
	Generated int64         `json:"generatedTokens"`
	Share     float64       `json:"share"`
	Revenue   ledger.Micros `json:"revenueMicros"`
	Cost      ledger.Micros `json:"costMicros"`
	Margin    ledger.Micros `json:"marginMicros"`
}

// Report is the outcome of Compute.
type Report struct {
	Since        time.Time     `json:"since"`
	Until        time.Time     `json:"until"`
	Energy       Energy        `json:"energy"`
	EnergyCost   ledger.Micros `json:"energyCostMicros"`
	FixedCost    ledger.Micros `json:"fixedCostMicros"`
	TotalCost    ledger.Micros `json:"totalCostMicros"`
	Revenue      ledger.Micros `json:"revenueMicros"`
	Margin       ledger.Micros `json:"marginMicros"`
	Unattributed ledger.Micros `json:"unattributedCostMicros"`
	// TokensPerJoule is generated tokens over measured joules (0 when
	// energy was not measured). Attribution by generated tokens gives
	// every row the same figure, so it is reported for the box.
	TokensPerJoule float64 `json:"tokensPerJoule"`
	// Basis says in words what the cost is made of.
	Basis string `json:"basis"`
	Rows  []Row  `json:"rows"`
}

// Compute prices the window and attributes the cost: each row gets the
// total cost times its share of generated tokens (of prompt tokens when
// nothing was generated, e.g. embeddings only); the micro-units left by
// rounding go to the rows with the largest remainders, so the rows add up
// to the total exactly. With no tokens at all the cost stays unattributed.
func Compute(costs Costs, since, until time.Time, usage []Usage, energy Energy, names map[string]string) (Report, error) {
	p, err := costs.parse()
	if err != nil {
		return Report{}, err
	}
	r := Report{Since: since, Until: until, Energy: energy}
	hours := until.Sub(since).Hours()
	// Fixed: (gpuMonthly + otherMonthly) × hours / 730, rounded to the micro.
	r.FixedCost = ledger.Micros(roundRat(new(big.Rat).Mul(new(big.Rat).SetInt64(int64(p.gpuMonthly+p.otherMonthly)),
		new(big.Rat).Quo(ratF(hours), new(big.Rat).SetInt64(HoursPerMonth)))))
	var basis []string
	if p.gpuMonthly+p.otherMonthly > 0 {
		basis = append(basis, fmt.Sprintf("fixed %s/month × %.2f h / %d h", (p.gpuMonthly+p.otherMonthly).String(), hours, HoursPerMonth))
	}
	switch {
	case energy.Measured && p.perKWh > 0:
		// Energy: joules / 3.6e6 × price per kWh.
		r.EnergyCost = ledger.Micros(roundRat(new(big.Rat).Quo(new(big.Rat).Mul(ratF(energy.Joules), new(big.Rat).SetInt64(int64(p.perKWh))),
			new(big.Rat).SetInt64(3_600_000))))
		basis = append(basis, fmt.Sprintf("electricity %.3f kWh measured × %s/kWh", energy.Joules/3.6e6, p.perKWh.String()))
	case energy.Measured:
		basis = append(basis, "energy measured but costs.electricityPerKWh not set: not priced")
	default:
		basis = append(basis, "energy not measured: fixed costs only")
	}
	if energy.Note != "" {
		basis = append(basis, energy.Note)
	}
	r.Basis = strings.Join(basis, "; ")
	r.TotalCost = r.FixedCost + r.EnergyCost

	var genSum, promptSum int64
	for _, u := range usage {
		genSum += u.Generated
		promptSum += u.Prompt
		r.Revenue += u.Revenue
	}
	weight := func(u Usage) int64 { return u.Generated }
	total := genSum
	if genSum == 0 {
		weight, total = func(u Usage) int64 { return u.Prompt }, promptSum
	}
	if energy.Measured && energy.Joules > 0 {
		r.TokensPerJoule = float64(genSum) / energy.Joules
	}
	r.Rows = make([]Row, len(usage))
	rems := make([]int64, len(usage))
	var given ledger.Micros
	for i, u := range usage {
		r.Rows[i] = Row{TenantID: u.TenantID, Tenant: cmp.Or(names[u.TenantID], u.TenantID), Model: u.Model, Requests: u.Requests,
			Prompt: u.Prompt, Generated: u.Generated, Revenue: u.Revenue}
		if total > 0 {
			// cost × w / total in integers: quotient and remainder.
			num := new(big.Int).Mul(big.NewInt(int64(r.TotalCost)), big.NewInt(weight(u)))
			q, m := new(big.Int).QuoRem(num, big.NewInt(total), new(big.Int))
			r.Rows[i].Cost, rems[i] = ledger.Micros(q.Int64()), m.Int64()
			r.Rows[i].Share = float64(weight(u)) / float64(total)
			given += r.Rows[i].Cost
		}
	}
	if total > 0 {
		order := make([]int, len(usage))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(rems[b], rems[a]) })
		for _, i := range order[:int(r.TotalCost-given)] {
			r.Rows[i].Cost++
		}
	} else {
		r.Unattributed = r.TotalCost
	}
	for i := range r.Rows {
		r.Rows[i].Margin = r.Rows[i].Revenue - r.Rows[i].Cost
	}
	r.Margin = r.Revenue - r.TotalCost
	slices.SortFunc(r.Rows, func(a, b Row) int { return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Model, b.Model)) })
	return r, nil
}

func ratF(f float64) *big.Rat {
	r, _ := new(big.Rat).SetString(fmt.Sprintf("%.9f", f))
	if r == nil {
		return new(big.Rat)
	}
	return r
}

// roundRat rounds half up to an integer.
func roundRat(r *big.Rat) int64 {
	n := new(big.Int).Mul(r.Num(), big.NewInt(2))
	n.Add(n, r.Denom())
	d := new(big.Int).Mul(r.Denom(), big.NewInt(2))
	return new(big.Int).Div(n, d).Int64()
}
