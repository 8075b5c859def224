package serve

// The settlement of one admitted request: its rate-limit ticket and its
// ledger hold, owned by one value so that each is settled exactly once
// whichever way the request ends (answer, error, client gone, panic).

import (
	"context"

	"github.com/llmctl/llmctl/pkg/billing"
)

// settlement is built where a request is admitted and handed down the path.
// charge settles the hold as soon as the answer's usage is known (a plain
// answer does so before its bytes go out); finish, deferred by the
// admitting function, charges whatever was not yet charged and then
// releases the ticket. Both happen at most once.
type settlement struct {
	ctx     context.Context // survives the client going away
	ticket  billing.Ticket  // nil without an Admitter
	hold    billing.Hold    // nil until reserved
	charged bool
	used    billing.Usage // what was charged (or is charged at finish)
	done    bool
}

// newSettlement starts the settlement of the request of ctx; settling uses
// a context without its cancellation, so it completes after a disconnect.
func newSettlement(ctx context.Context, ticket billing.Ticket) *settlement {
	return &settlement{ctx: context.WithoutCancel(ctx), ticket: ticket}
}

// reserved attaches the ledger hold.
func (s *settlement) reserved(h billing.Hold) { s.hold = h }

// charge settles the hold at used, the first time only.
func (s *settlement) charge(used billing.Usage) {
	if s.charged {
		return
	}
	s.charged, s.used = true, used
	if s.hold != nil {
		s.hold.Settle(s.ctx, used)
	}
}

// finish ends the settlement: the hold is charged used unless it already
// was, then the ticket settles to what was charged. Later calls do nothing.
func (s *settlement) finish(used billing.Usage) {
	if s.done {
		return
	}
	s.done = true
	s.charge(used)
	if s.ticket != nil {
		s.ticket.Done(s.ctx, s.used)
	}
}
