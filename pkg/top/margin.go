package top

import (
	"context"
	"fmt"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/margin"
)

// MarginWindow is the Margin pane's window, ending now: the same default
// as `llmctl ledger margin --since 24h`, so the two agree to the micro-unit.
const MarginWindow = 24 * time.Hour

// MarginSource is what the Margin pane reads: revenue from the ledger
// against the configured costs over [since, until].
type MarginSource interface {
	Margin(ctx context.Context, since, until time.Time) (margin.Report, error)
}

// ReadMargin prices the window ending at now, if there is a ledger to read.
func (s *Sources) ReadMargin(ctx context.Context, now time.Time) (margin.Report, error) {
	if s.Margin == nil {
		return margin.Report{}, errNoLedger
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	rep, err := s.Margin.Margin(ctx, now.Add(-MarginWindow), now)
	if err != nil {
		return margin.Report{}, fmt.Errorf("margin: %w", err)
	}
	return rep, nil
}
