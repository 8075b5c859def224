package ledgersource

import (
	"context"
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
}

var _ top.MarginSource = Margins{}

// NoCosts is the basis stated when no cost is configured.
const NoCosts = "no costs configured (costs: in the --config file): cost 0, margin = revenue"

// noEnergy is why top prices fixed costs only: it keeps no energy baseline
// of its own (`llmctl ledger margin --energy-target` does).
const noEnergy = "top reads no energy counter (llmctl ledger margin --energy-target prices energy)"

// Margin reads the window's charges and tenant names and prices them.
func (m Margins) Margin(ctx context.Context, since, until time.Time) (margin.Report, error) {
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
	rep, err := margin.Compute(m.Costs, since, until, usage, margin.Energy{Note: noEnergy}, names)
	if err != nil {
		return margin.Report{}, err
	}
	if m.Costs == (margin.Costs{}) {
		rep.Basis = NoCosts
	}
	return rep, nil
}
