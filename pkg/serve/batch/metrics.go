package batch

// The batches' metrics (docs/metrics.md, "Batches"): batches by status and
// the progress of each unfinished one, read from the store at scrape time
// (so every replica reports the same, whichever runs a batch), and the
// lines this process recorded, counted as they are. The lines waiting for
// a backend slot are llmctl_queue_depth{priority="batch"}, and the batch
// share of the slots llmctl_batch_slots, both the gateway's.

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	batchesDesc = prometheus.NewDesc("llmctl_batches",
		"Batches in the store by status.", []string{"status"}, nil)
	batchLinesDesc = prometheus.NewDesc("llmctl_batch_progress",
		"Lines of each unfinished batch: state=total, completed (answered 2xx) or failed.",
		[]string{"batch", "tenant", "status", "state"}, nil)
)

// allStatuses are reported even at 0, so a status appears before its first batch.
var allStatuses = []Status{StatusValidating, StatusInProgress, StatusFinalizing, StatusCompleted,
	StatusFailed, StatusExpired, StatusCancelling, StatusCancelled}

// statusCounter is a Store that counts its batches by status in one query;
// without it only the unfinished batches are counted.
type statusCounter interface {
	CountByStatus(ctx context.Context) (map[Status]int64, error)
}

// CountByStatus counts the batches by status (the status index).
func (s *sqlStore) CountByStatus(ctx context.Context) (map[Status]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT status, COUNT(*) FROM batches GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("count batches: %w", err)
	}
	defer rows.Close()
	out := map[Status]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count batches: %w", err)
		}
		out[Status(st)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count batches: %w", err)
	}
	return out, nil
}

// collector reports llmctl_batches and llmctl_batch_progress from store.
type collector struct {
	s *Service
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- batchesDesc
	ch <- batchLinesDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	// A scrape must not hang on a slow database; what it cannot read it
	// leaves out (and logs), the other series still go.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	unfinished, err := c.s.store.Unfinished(ctx)
	if err != nil {
		c.s.log.Warn("batch metrics: list unfinished batches", "err", err)
		return
	}
	counts := map[Status]int64{}
	if sc, ok := c.s.store.(statusCounter); ok {
		if counts, err = sc.CountByStatus(ctx); err != nil {
			c.s.log.Warn("batch metrics: count batches", "err", err)
			return
		}
	} else {
		for _, b := range unfinished {
			counts[b.Status]++
		}
	}
	for _, st := range allStatuses {
		ch <- prometheus.MustNewConstMetric(batchesDesc, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
	for _, b := range unfinished {
		for state, n := range map[string]int64{"total": b.Total, "completed": b.Completed, "failed": b.Failed} {
			ch <- prometheus.MustNewConstMetric(batchLinesDesc, prometheus.GaugeValue, float64(n), b.ID, b.TenantID, string(b.Status), state)
		}
	}
}

// countingStore counts the lines recorded through it
// (llmctl_batch_lines_total): each line once, when it is first recorded.
type countingStore struct {
	Store
	lines *prometheus.CounterVec
}

func (c countingStore) RecordLine(ctx context.Context, batchID string, l Line) (bool, error) {
	recorded, err := c.Store.RecordLine(ctx, batchID, l)
	if recorded {
		result := "completed"
		if l.Failed {
			result = "failed"
		}
		c.lines.WithLabelValues(result).Inc()
	}
	return recorded, err
}

// register puts the batches' metrics on reg and counts the lines s records.
func (s *Service) register(reg prometheus.Registerer) error {
	lines := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llmctl_batch_lines_total",
		Help: "Batch lines recorded by this process, by result (completed: answered 2xx; failed: in the error file)."},
		[]string{"result"})
	for _, c := range []prometheus.Collector{lines, collector{s}} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("batch: register metrics: %w", err)
		}
	}
	for _, r := range []string{"completed", "failed"} {
		lines.WithLabelValues(r)
	}
	s.opts.Store = countingStore{Store: s.opts.Store, lines: lines}
	return nil
}
