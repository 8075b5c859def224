package serve

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmctl/llmctl/pkg/billing"
)

// countHold and countTicket record every call the settlement makes.
type countHold struct{ settles []billing.Usage }

func (h *countHold) Settle(_ context.Context, u billing.Usage) { h.settles = append(h.settles, u) }

type countTicket struct{ dones []billing.Usage }

func (t *countTicket) Header() http.Header                     { return nil }
func (t *countTicket) Done(_ context.Context, u billing.Usage) { t.dones = append(t.dones, u) }

func TestSettlementOnce(t *testing.T) {
	answer := billing.Usage{PromptTokens: 3, CompletionTokens: 5}
	onceEach := func(t *testing.T, h *countHold, tk *countTicket) {
		t.Helper()
		if len(h.settles) != 1 || h.settles[0] != answer || len(tk.dones) != 1 || tk.dones[0] != answer {
			t.Fatalf("settles %v, dones %v; want one each of %v", h.settles, tk.dones, answer)
		}
	}
	t.Run("charged early, finished later", func(t *testing.T) {
		h, tk := &countHold{}, &countTicket{}
		s := newSettlement(t.Context(), tk)
		s.reserved(h)
		s.charge(answer)
		s.charge(billing.Usage{PromptTokens: 99})
		if len(h.settles) != 1 || len(tk.dones) != 0 {
			t.Fatalf("after charge: %d settles, %d dones", len(h.settles), len(tk.dones))
		}
		s.finish(billing.Usage{})
		s.finish(billing.Usage{})
		onceEach(t, h, tk)
	})
	t.Run("finished only", func(t *testing.T) {
		h, tk := &countHold{}, &countTicket{}
		s := newSettlement(t.Context(), tk)
		s.reserved(h)
		s.finish(answer)
		s.charge(billing.Usage{PromptTokens: 99})
		s.finish(billing.Usage{})
		onceEach(t, h, tk)
	})
	t.Run("refused before the hold", func(t *testing.T) {
		tk := &countTicket{}
		s := newSettlement(t.Context(), tk)
		s.finish(billing.Usage{})
		if len(tk.dones) != 1 {
			t.Fatalf("dones %v", tk.dones)
		}
	})
	t.Run("no admitter", func(t *testing.T) {
		h := &countHold{}
		s := newSettlement(t.Context(), nil)
		s.reserved(h)
		s.finish(answer)
		if len(h.settles) != 1 {
			t.Fatalf("settles %v", h.settles)
		}
	})
	t.Run("settles after the client left", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		s := newSettlement(ctx, nil)
		cancel()
		if s.ctx.Err() != nil {
			t.Fatal("the settlement's context ends with the request's")
		}
	})
}

func TestLeaseDoneOnce(t *testing.T) {
	a := mem("a", 1, 1)
	r := testRouter(a)
	r.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x"}, []string{"backend", "reason"})
	l := r.lease("m", nil)
	if l == nil || a.outstanding.Load() != 1 {
		t.Fatalf("lease %v, outstanding %d", l, a.outstanding.Load())
	}
	if r.lease("m", nil) != nil {
		t.Fatal("a second lease past maxConcurrency 1")
	}
	fault := &BackendError{Backend: "a", Reason: Reason5xx, Status: 500, Retryable: true, Err: errors.New("boom")}
	l.done(fault)
	l.done(fault)
	l.done(nil)
	if n := a.outstanding.Load(); n != 0 {
		t.Fatalf("outstanding %d after done, want 0", n)
	}
	if got := testutil.ToFloat64(r.upstreamErrors.WithLabelValues("a", Reason5xx)); got != 1 {
		t.Fatalf("upstream errors %v, want 1", got)
	}
	a.mu.Lock()
	failures := a.failures
	a.mu.Unlock()
	if failures != 1 {
		t.Fatalf("failures %d, want 1 (ejected once)", failures)
	}

	// A stream cut is counted but does not eject; the client leaving is
	// neither; an answer ends an ejection.
	l = r.lease("m", nil) // ejected, but the only one: still leased
	l.answered()
	l.done(&BackendError{Backend: "a", Reason: ReasonStream, Err: errors.New("cut")})
	l = r.lease("m", nil)
	l.done(context.Canceled)
	a.mu.Lock()
	failures = a.failures
	a.mu.Unlock()
	if failures != 0 || a.outstanding.Load() != 0 {
		t.Fatalf("failures %d outstanding %d, want 0 0", failures, a.outstanding.Load())
	}
	if got := testutil.ToFloat64(r.upstreamErrors.WithLabelValues("a", ReasonStream)); got != 1 {
		t.Fatalf("stream errors %v, want 1", got)
	}
}
