package batch

import "fmt"

// LineCharge is what the ledger holds of one batch line's runs. Each run
// of a line is charged under ledger.BatchLineKey of its request id, which
// has no random part (runID), so the ledger itself tells the worker that
// takes a batch over what its previous owner left behind.
type LineCharge struct {
	// Charged is the request id of the run that was charged ("" if none):
	// the line was charged and its answer lost in a crash before it was
	// stored.
	Charged string
	// Held: a run still holds a reservation, settled by nobody yet. Its
	// process may be alive (a running line finishes after its lease is
	// lost) or dead with its charge in its spool; either way the run's
	// outcome lands later (the process's settlement, or its restart on
	// the spool releasing the hold), so the line waits for it.
	Held bool
	// Runs counts the runs the ledger has an entry for (charged or
	// released).
	Runs int
}

// runID is the request id of the next run of line lineNo given what the
// ledger holds of it; ok is false while a run's reservation is open.
//
//   - no run in the ledger: "<batch>-<line>", the line's own id;
//   - a charged run: that run's id again, so its settlement meets the
//     first charge's key and the ledger keeps the first charge only: the
//     line is answered again and charged once;
//   - only released runs (their process died before settling and its
//     restart released the hold, or nothing was used): a new id,
//     "<batch>-<line>-r<N>", since a released key charges nothing more.
func runID(batchID string, lineNo int64, c LineCharge) (id string, ok bool) {
	switch {
	case c.Held:
		return "", false
	case c.Charged != "":
		return c.Charged, true
	case c.Runs == 0:
		return requestID(batchID, lineNo), true
	default:
		return fmt.Sprintf("%s-r%d", requestID(batchID, lineNo), c.Runs+1), true
	}
}
