package reconcile

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// Status of a row.
const (
	StatusOK         = "ok"
	StatusDrift      = "drift"
	StatusNoBaseline = "no-baseline" // no sample at or before the window's start yet
	StatusUnwatched  = "unwatched"   // charged in the ledger, served by no target given
)

// Tolerance is how far the two sides may differ before it is drift: more
// than Tokens and more than Fraction of the backend's count (both must be
// exceeded, so that tiny windows and big ones are judged sensibly).
type Tolerance struct {
	Tokens   int64
	Fraction float64
}

func (t Tolerance) exceeded(drift, backend int64) bool {
	d := drift
	if d < 0 {
		d = -d
	}
	return d > t.Tokens && float64(d) > t.Fraction*float64(backend)
}

// Row is one model's comparison over [Since, Until].
type Row struct {
	Model   string    `json:"model"`
	Targets []string  `json:"targets,omitempty"`
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
	Ledger  Counts    `json:"ledger"`
	Backend Counts    `json:"backend"`
	// Drift is backend minus ledger: positive means tokens generated and
	// not charged (under-billing), negative charged and not generated.
	Drift Counts `json:"drift"`
	// LowerBound: a backend restarted inside the window, so its tokens
	// before the restart are unknown and Backend is a lower bound; only
	// under-billing can then be shown.
	LowerBound bool   `json:"lowerBound,omitempty"`
	Status     string `json:"status"`
	Note       string `json:"note,omitempty"`
}

// window is what one target contributes: its increase since its baseline.
type window struct {
	target string
	from   time.Time
	inc    map[string]Counts
	reset  bool
	note   string
}

// increase finds cur's baseline for a window starting at since: the
// backend's own start when it started at or after since (its counters then
// hold only the window), else the newest earlier sample of the target taken
// at or before since. ok is false when there is neither.
func increase(history []Sample, cur Sample, since time.Time) (window, bool) {
	w := window{target: cur.Target, inc: map[string]Counts{}}
	if !cur.Start.IsZero() && !cur.Start.Before(since) {
		w.from, w.inc = cur.Start, cur.Models
		return w, true
	}
	var base *Sample
	for i := range history {
		h := &history[i]
		if h.Target != cur.Target || h.Time.After(since) || h.Time.After(cur.Time) {
			continue
		}
		if base == nil || h.Time.After(base.Time) {
			base = h
		}
	}
	if base == nil {
		return w, false
	}
	w.from = base.Time
	restarted := !cur.Start.IsZero() && !base.Start.IsZero() && cur.Start.After(base.Start)
	for m, c := range cur.Models {
		b := base.Models[m]
		// A counter lower than before means the backend restarted: what it
		// counted before is gone, so the increase is at least what it
		// counted since (Prometheus' own increase() rule).
		if restarted || c.Prompt < b.Prompt || c.Generated < b.Generated {
			w.reset = true
			w.inc[m] = c
			continue
		}
		w.inc[m] = Counts{c.Prompt - b.Prompt, c.Generated - b.Generated}
	}
	if w.reset {
		w.note = "backend restarted in the window: its counts are a lower bound"
	}
	return w, true
}

// LedgerTokens sums the tokens of charged requests (debits and releases)
// per model, for entries created in [since, until].
func LedgerTokens(ctx context.Context, l ledger.EntryLister, since, until time.Time) (map[string][]TimedCounts, error) {
	out := map[string][]TimedCounts{}
	err := ledger.Walk(ctx, l, ledger.Filter{Since: since, Until: until}, func(e ledger.Entry) {
		if e.Kind == ledger.KindDebit || e.Kind == ledger.KindRelease {
			out[e.Model] = append(out[e.Model], TimedCounts{e.Time, Counts{e.PromptTokens, e.CompletionTokens}})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("reading the ledger: %w", err)
	}
	return out, nil
}

// TimedCounts are one ledger entry's tokens and time.
type TimedCounts struct {
	Time time.Time
	Counts
}

func sumFrom(tc []TimedCounts, from time.Time) Counts {
	var c Counts
	for _, e := range tc {
		if !e.Time.Before(from) {
			c = c.add(e.Counts)
		}
	}
	return c
}

// Input is one reconciliation.
type Input struct {
	Since, Until time.Time
	// Current are this run's samples, one per target; History earlier ones.
	Current, History []Sample
	// Ledger is LedgerTokens from the earliest possible baseline (the
	// oldest history sample or backend start) to Until.
	Ledger    map[string][]TimedCounts
	Tolerance Tolerance
}

// EarliestFrom is the earliest time a window may start: where the ledger
// must be read from.
func EarliestFrom(since time.Time, current, history []Sample) time.Time {
	from := since
	for _, h := range history {
		if h.Time.Before(from) {
			from = h.Time
		}
	}
	for _, c := range current {
		if !c.Start.IsZero() && c.Start.Before(from) {
			from = c.Start
		}
	}
	return from
}

// Compare builds one row per model: the targets' increases are summed (the
// replicas of a model together), the ledger is summed from the earliest of
// their baselines. Targets whose baseline is later than another's of the
// same model undercount the backend side, so such a row says so.
func Compare(in Input) []Row {
	rows := map[string]*Row{}
	for _, cur := range in.Current {
		w, ok := increase(in.History, cur, in.Since)
		if !ok {
			for m := range cur.Models {
				r := row(rows, m, in.Until)
				r.Targets = append(r.Targets, cur.Target)
				r.Status = StatusNoBaseline
				r.Note = "no earlier sample of " + cur.Target + " at or before the window's start (recorded one now: rerun later, or use --interval)"
			}
			continue
		}
		for m, inc := range w.inc {
			r := row(rows, m, in.Until)
			r.Targets = append(r.Targets, cur.Target)
			if r.Since.IsZero() || w.from.Before(r.Since) {
				if !r.Since.IsZero() {
					r.LowerBound = true
				}
				r.Since = w.from
			} else if !w.from.Equal(r.Since) {
				r.LowerBound = true
			}
			r.Backend = r.Backend.add(inc)
			r.LowerBound = r.LowerBound || w.reset
			if w.note != "" {
				r.Note = w.note
			}
		}
	}
	for m, tc := range in.Ledger {
		if _, ok := rows[m]; ok {
			continue
		}
		if c := sumFrom(tc, in.Since); c != (Counts{}) {
			r := row(rows, m, in.Until)
			r.Since, r.Ledger, r.Status = in.Since, c, StatusUnwatched
			r.Note = "no target serves this model"
		}
	}
	out := make([]Row, 0, len(rows))
	for _, r := range rows {
		if r.Status == "" {
			r.Ledger = sumFrom(in.Ledger[r.Model], r.Since)
			r.Drift = Counts{r.Backend.Prompt - r.Ledger.Prompt, r.Backend.Generated - r.Ledger.Generated}
			r.Status = StatusOK
			if in.Tolerance.exceeded(r.Drift.Generated, r.Backend.Generated) || in.Tolerance.exceeded(r.Drift.Prompt, r.Backend.Prompt) {
				r.Status = StatusDrift
			}
			// With a lower bound only under-billing is shown.
			if r.LowerBound && r.Drift.Generated <= 0 && r.Drift.Prompt <= 0 {
				r.Status = StatusOK
			}
		}
		slices.Sort(r.Targets)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b Row) int { return cmp.Compare(a.Model, b.Model) })
	return out
}

func row(rows map[string]*Row, m string, until time.Time) *Row {
	r, ok := rows[m]
	if !ok {
		r = &Row{Model: m, Until: until}
		rows[m] = r
	}
	return r
}

// Drifted reports whether any row is drift.
func Drifted(rows []Row) bool {
	return slices.ContainsFunc(rows, func(r Row) bool { return r.Status == StatusDrift })
}

// Emitter writes an alert event (ledger.Outbox).
type Emitter interface {
	Emit(ctx context.Context, ev ledger.Event) (bool, error)
}

// driftPayload is the data of a billing.drift event.
type driftPayload struct {
	Model            string `json:"model"`
	Since            string `json:"since"`
	Until            string `json:"until"`
	LedgerPrompt     int64  `json:"ledgerPromptTokens"`
	LedgerGenerated  int64  `json:"ledgerCompletionTokens"`
	BackendPrompt    int64  `json:"backendPromptTokens"`
	BackendGenerated int64  `json:"backendGeneratedTokens"`
	DriftPrompt      int64  `json:"driftPromptTokens"`
	DriftGenerated   int64  `json:"driftGeneratedTokens"`
	LowerBound       bool   `json:"lowerBound"`
}

// Alert writes one billing.drift event per drifting row into the alerts
// outbox, which the gateway delivers like spool.backlog. The id comes from
// the model and window, so rerunning over the same window sends nothing new.
func Alert(ctx context.Context, e Emitter, rows []Row, now time.Time) (int, error) {
	n := 0
	for _, r := range rows {
		if r.Status != StatusDrift {
			continue
		}
		data, err := json.Marshal(driftPayload{r.Model, r.Since.UTC().Format(time.RFC3339Nano), r.Until.UTC().Format(time.RFC3339Nano),
			r.Ledger.Prompt, r.Ledger.Generated, r.Backend.Prompt, r.Backend.Generated, r.Drift.Prompt, r.Drift.Generated, r.LowerBound})
		if err != nil {
			return n, err
		}
		ev := ledger.Event{ID: ledger.EventID(ledger.EventBillingDrift, r.Model, strconv.FormatInt(r.Since.UnixMicro(), 10),
			strconv.FormatInt(r.Until.UnixMicro(), 10)), Type: ledger.EventBillingDrift, Payload: data, Time: now}
		created, err := e.Emit(ctx, ev)
		if err != nil {
			return n, fmt.Errorf("writing the billing.drift alert: %w", err)
		}
		if created {
			n++
		}
	}
	return n, nil
}

// Gauges registers llmctl_billing_drift_tokens{model,kind} on reg and sets
// it from rows (kind: prompt or generated; backend minus ledger).
func Gauges(reg prometheus.Registerer, rows []Row) error {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "llmctl_billing_drift_tokens",
		Help: "Tokens the backends counted minus tokens the ledger charged, per model, over the last reconciled window (positive: under-billed).",
	}, []string{"model", "kind"})
	if err := reg.Register(g); err != nil {
		return err
	}
	for _, r := range rows {
		if r.Status != StatusOK && r.Status != StatusDrift {
			continue
		}
		g.WithLabelValues(r.Model, "prompt").Set(float64(r.Drift.Prompt))
		g.WithLabelValues(r.Model, "generated").Set(float64(r.Drift.Generated))
	}
	return nil
}

// Ratio is backend/ledger generated tokens, for display (NaN when the
// ledger charged none).
func (r Row) Ratio() float64 {
	if r.Ledger.Generated == 0 {
		return math.NaN()
	}
	return float64(r.Backend.Generated) / float64(r.Ledger.Generated)
}
