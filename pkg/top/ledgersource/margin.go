package ledgersource

import (
	"context"
	"net/http"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/margin"
	"github.com/llmctl/llmctl/pkg/top"
)

// Margins prices the ledger's revenue against Costs (the serve config's
// costs: section) for the Margin pane, with pkg/billing/margin as
// `llmctl ledger margin` does.
type Margins struct {
	Source *Source
	Costs  margin.Costs
	// EnergyTarget is a gateway's admin /metrics with the GPUs' energy
	// counter; empty prices fixed costs only. State is the energy state file
	// shared with `llmctl ledger margin` (baselines at or before the
	// window's start); top adds a sample to it at most once per
	// EnergySampleEvery.
	EnergyTarget string
	State        string
	HTTP         *http.Client
}

// EnergySampleEvery spaces the samples top records: 500 of them (the state
// file's bound) then span three weeks, so the pane's 24 h window keeps a
// baseline however long top runs.
const EnergySampleEvery = time.Hour

var _ top.MarginSource = Margins{}

// NoCosts is the basis stated when no cost is configured.
const NoCosts = "no costs configured (costs: in the --config file): cost 0, margin = revenue"

// noEnergy is why top prices fixed costs only without --energy-target.
const noEnergy = "no --energy-target given"

// Margin reads the window's charges and tenant names and prices them.
func (m Margins) Margin(ctx context.Context, since, until time.Time) (margin.Report, error) {
	energy := margin.Energy{Note: noEnergy}
	if m.EnergyTarget != "" {
		// First: the ledger is read over the energy's window (from its
		// baseline). An unreachable gateway leaves the pane on fixed costs,
		// saying why: the ledger's numbers are still worth showing.
		hc := m.HTTP
		if hc == nil {
			hc = &http.Client{Timeout: 5 * time.Second}
		}
		var err error
		if energy, since, err = margin.Measure(ctx, hc, m.EnergyTarget, m.State, since, until, EnergySampleEvery); err != nil {
			energy = margin.Energy{Note: err.Error()}
		}
	}
	usage, err := margin.FromLedger(ctx, m.Source.Ledger, since, until)
	if err != nil {
		return margin.Report{}, err
	}
	ts, err := m.Source.Store.ListTenants(ctx)
	if err != nil {
		return margin.Report{}, err
	}
	names := make(map[string]string, len(ts))
	for _, t := range ts {
		names[t.ID] = t.Name
	}
	rep, err := margin.Compute(m.Costs, since, until, usage, energy, names)
	if err != nil {
		return margin.Report{}, err
	}
	if m.Costs == (margin.Costs{}) {
		rep.Basis = NoCosts
	}
	return rep, nil
}
