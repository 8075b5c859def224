package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// Defaults of Options.
const (
	DefaultPoll        = time.Second
	DefaultTimeout     = 10 * time.Second
	DefaultRetryWindow = 24 * time.Hour
	DefaultBacklogAge  = 5 * time.Minute
	DefaultBacklogSize = 10_000
	// KeyExpiringAhead is how long before its expiry a key is reported.
	KeyExpiringAhead = 7 * 24 * time.Hour
	keyScanEvery     = 10 * time.Minute
	// maxEventAge: events older than this when first dispatched (written
	// while no gateway had alerts configured) are not sent.
	maxEventAge = 24 * time.Hour
	claimBatch  = 32
	firstRetry  = 5 * time.Second
	maxRetryGap = time.Hour
)

// KeyLister lists API keys (store.Store does), for key.expiring.
type KeyLister interface {
	ListKeys(ctx context.Context, tenant string) ([]store.Key, error)
}

// Backlog reports the ledger's spool: entries waiting and the age of the
// oldest (ledger.Ledger.Backlog), for spool.backlog.
type Backlog func() (depth int, oldest time.Duration)

// Options configure a Worker.
type Options struct {
	Config Config // validated
	Outbox ledger.Outbox
	Keys   KeyLister // nil: no key.expiring
	// Backlog, nil for none, is checked every round against BacklogSize
	// and BacklogAge: one spool.backlog per crossing of either.
	Backlog     Backlog
	BacklogSize int
	BacklogAge  time.Duration
	// Instance names this process in spool.backlog (default: host name).
	Instance string
	Logger   *slog.Logger
	// Registerer, if set, gets llmctl_alert_attempts_total.
	Registerer prometheus.Registerer
	// Now, Jitter and Client are for tests: a fake clock, the random
	// factor in [0, 1) and the HTTP client.
	Now    func() time.Time
	Jitter func() float64
	Client *http.Client
	// Poll is the pause between rounds; Timeout bounds one attempt;
	// RetryWindow is how long a delivery is retried.
	Poll        time.Duration
	Timeout     time.Duration
	RetryWindow time.Duration
}

// Worker delivers the outbox. Several may run against one database.
type Worker struct {
	o        Options
	signers  map[string]*standardwebhooks.Webhook
	log      *slog.Logger
	attempts *prometheus.CounterVec

	mu          sync.Mutex // guards the fields below (Step is not reentrant)
	lastKeyScan time.Time
	backlogHigh time.Time // when the current backlog crossing began; zero when none
}

// New checks the options and prepares the signers.
func New(o Options) (*Worker, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	if o.Outbox == nil {
		return nil, errors.New("alerts: no outbox")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Jitter == nil {
		o.Jitter = rand.Float64
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.RetryWindow <= 0 {
		o.RetryWindow = DefaultRetryWindow
	}
	if o.BacklogSize <= 0 {
		o.BacklogSize = DefaultBacklogSize
	}
	if o.BacklogAge <= 0 {
		o.BacklogAge = DefaultBacklogAge
	}
	if o.Instance == "" {
		o.Instance, _ = os.Hostname()
	}
	if o.Client == nil {
		o.Client = &http.Client{
			Timeout: o.Timeout,
			// A receiver's redirect is not followed: a signed event goes
			// only to the configured URL, never to where a response says.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	w := &Worker{o: o, signers: map[string]*standardwebhooks.Webhook{}, log: o.Logger,
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmctl_alert_attempts_total",
			Help: "Alert webhook attempts by result: delivered, retry (will be sent again) or failed (retries exhausted).",
		}, []string{"result"})}
	for _, r := range []string{"delivered", "retry", "failed"} {
		w.attempts.WithLabelValues(r) // present at 0 from the start
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(w.attempts); err != nil {
			return nil, fmt.Errorf("alerts: metrics: %w", err)
		}
	}
	for _, e := range o.Config.Endpoints {
		wh, err := standardwebhooks.NewWebhook(e.Secret)
		if err != nil {
			return nil, fmt.Errorf("alerts: endpoint %s: secret: not a Standard Webhooks secret", redact(e.URL))
		}
		w.signers[e.URL] = wh
	}
	return w, nil
}

// Run delivers until ctx ends, one Step every Poll.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(w.o.Poll)
	defer t.Stop()
	for {
		if err := w.Step(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("alerts round failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Step runs one round: the key and spool scans, dispatching new events to
// their endpoints, and one attempt at every due delivery.
func (w *Worker) Step(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.o.Now()
	var errs []error
	if w.o.Keys != nil && now.Sub(w.lastKeyScan) >= keyScanEvery {
		if err := w.scanKeys(ctx, now); err != nil {
			errs = append(errs, err)
		} else {
			w.lastKeyScan = now
		}
	}
	if w.o.Backlog != nil {
		errs = append(errs, w.checkBacklog(ctx, now))
	}
	if _, err := w.o.Outbox.Dispatch(ctx, w.o.Config.routes(), now, maxEventAge); err != nil {
		errs = append(errs, err)
	}
	var wg sync.WaitGroup
	lease := 2*w.o.Timeout + 30*time.Second
	for _, e := range w.o.Config.Endpoints {
		ds, err := w.o.Outbox.Claim(ctx, e.URL, now, lease, claimBatch)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		wg.Go(func() { w.deliverBatch(ctx, ds, lease) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// deliverBatch sends one endpoint's claimed deliveries one at a time,
// oldest first. It stops at the first failure (a receiver that is down
// costs one attempt per round, not a batch of timeouts) and before the
// lease could run out (so no other replica sends one of them at the same
// time); what it did not attempt is released, due as it was.
func (w *Worker) deliverBatch(ctx context.Context, ds []ledger.Delivery, lease time.Duration) {
	start := time.Now()
	for i, d := range ds {
		if ctx.Err() != nil || i > 0 && time.Since(start)+w.o.Timeout > lease-10*time.Second {
			w.release(ctx, ds[i:])
			return
		}
		ok, err := w.deliver(ctx, d)
		if err != nil {
			w.log.Warn("alerts: recording a delivery failed", "delivery", d.ID, "err", err)
		}
		if !ok {
			w.release(ctx, ds[i+1:])
			return
		}
	}
}

func (w *Worker) release(ctx context.Context, ds []ledger.Delivery) {
	// Also on shutdown: a release that is not written leaves the delivery
	// leased for 50 s.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, d := range ds {
		if err := w.o.Outbox.Release(ctx, d); err != nil {
			w.log.Warn("alerts: releasing a delivery failed; its lease lapses", "delivery", d.ID, "err", err)
		}
	}
}

// body is what a receiver gets: the Standard Webhooks payload shape.
type body struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// deliver makes one attempt and records it; ok is whether it was delivered.
func (w *Worker) deliver(ctx context.Context, d ledger.Delivery) (ok bool, err error) {
	now := w.o.Now()
	code, sendErr := w.send(ctx, d, now)
	if sendErr != nil && ctx.Err() != nil {
		// Shutting down: not the receiver's failure, so not an attempt.
		w.release(ctx, []ledger.Delivery{d})
		return false, nil
	}
	// The outcome is recorded even if shutdown begins now.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	out := ledger.Outcome{Status: ledger.DeliveryDelivered, StatusCode: code, At: now}
	if sendErr == nil {
		w.attempts.WithLabelValues("delivered").Inc()
		w.log.Info("alert delivered", "delivery", d.ID, "event", d.EventID, "type", d.EventType, "endpoint", redact(d.Endpoint), "status", code)
		return true, w.o.Outbox.Finish(ctx, d, out)
	}
	out.Err = sendErr.Error()
	next := now.Add(w.backoff(d.Attempts + 1))
	if next.Sub(d.WindowStart) > w.o.RetryWindow {
		out.Status = ledger.DeliveryFailed
		w.attempts.WithLabelValues("failed").Inc()
		w.log.Warn("alert delivery failed for good", "delivery", d.ID, "event", d.EventID, "endpoint", redact(d.Endpoint),
			"attempts", d.Attempts+1, "err", sendErr)
	} else {
		out.Status, out.Next = ledger.DeliveryPending, next
		w.attempts.WithLabelValues("retry").Inc()
		w.log.Info("alert delivery will be retried", "delivery", d.ID, "event", d.EventID, "endpoint", redact(d.Endpoint),
			"attempts", d.Attempts+1, "next", next, "err", sendErr)
	}
	return false, w.o.Outbox.Finish(ctx, d, out)
}

// send makes one attempt; a nil error means a 2xx answer.
func (w *Worker) send(ctx context.Context, d ledger.Delivery, now time.Time) (int, error) {
	wh := w.signers[d.Endpoint]
	if wh == nil { // Claim only returns configured endpoints
		return 0, errors.New("endpoint no longer configured")
	}
	payload, err := json.Marshal(body{Type: d.EventType, Timestamp: d.Event.Time, Data: d.Event.Payload})
	if err != nil {
		return 0, fmt.Errorf("encode event: %w", err)
	}
	sig, err := wh.Sign(d.EventID, now, payload)
	if err != nil {
		return 0, fmt.Errorf("sign event: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Endpoint, bytes.NewReader(payload))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "llmctl-alerts")
	req.Header.Set(standardwebhooks.HeaderWebhookID, d.EventID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	resp, err := w.o.Client.Do(req)
	if err != nil {
		// The client's error names the URL; drop any credentials from it.
		return 0, fmt.Errorf("POST %s: %w", redact(d.Endpoint), unwrapURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("receiver answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

func unwrapURLError(err error) error {
	var u *url.Error
	if errors.As(err, &u) {
		return u.Err
	}
	return err
}

// backoff is the pause before attempt n+1: 5 s doubling per attempt, at
// most an hour, times a random factor in [0.5, 1.5) so that receivers
// coming back are not hit by every sender at once.
func (w *Worker) backoff(attempts int) time.Duration {
	d := firstRetry
	for i := 1; i < attempts && d < maxRetryGap; i++ {
		d *= 2
	}
	d = min(d, maxRetryGap)
	return time.Duration(float64(d) * (0.5 + w.o.Jitter()))
}

// scanKeys emits key.expiring for live keys expiring within 7 days, once
// per key and expiry (the id says which).
func (w *Worker) scanKeys(ctx context.Context, now time.Time) error {
	keys, err := w.o.Keys.ListKeys(ctx, "")
	if err != nil {
		return fmt.Errorf("alerts: list keys: %w", err)
	}
	for _, k := range keys {
		if k.RevokedAt != nil || k.ExpiresAt == nil || !k.ExpiresAt.After(now) || k.ExpiresAt.Sub(now) > KeyExpiringAhead {
			continue
		}
		exp := k.ExpiresAt.UTC()
		data, err := json.Marshal(map[string]string{"tenant": k.TenantID, "tenantName": k.TenantName, "keyId": k.ID,
			"keyName": k.Name, "expiresAt": exp.Format(time.RFC3339)})
		if err != nil {
			return err
		}
		ev := ledger.Event{ID: ledger.EventID(ledger.EventKeyExpiring, k.ID, exp.Format(time.RFC3339Nano)),
			Type: ledger.EventKeyExpiring, TenantID: k.TenantID, Payload: data, Time: now}
		if _, err := w.o.Outbox.Emit(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// checkBacklog emits spool.backlog when the spool goes over a threshold,
// once until it is back under both.
func (w *Worker) checkBacklog(ctx context.Context, now time.Time) error {
	depth, oldest := w.o.Backlog()
	high := depth >= w.o.BacklogSize || oldest >= w.o.BacklogAge
	if !high {
		w.backlogHigh = time.Time{}
		return nil
	}
	if !w.backlogHigh.IsZero() {
		return nil
	}
	data, err := json.Marshal(map[string]any{"instance": w.o.Instance, "depth": depth, "oldestSeconds": int64(oldest.Seconds()),
		"maxDepth": w.o.BacklogSize, "maxAgeSeconds": int64(w.o.BacklogAge.Seconds())})
	if err != nil {
		return err
	}
	ev := ledger.Event{ID: ledger.EventID(ledger.EventSpoolBacklog, w.o.Instance, strconv.FormatInt(now.UnixMicro(), 10)),
		Type: ledger.EventSpoolBacklog, Payload: data, Time: now}
	if _, err := w.o.Outbox.Emit(ctx, ev); err != nil {
		return err
	}
	w.backlogHigh = now
	w.log.Warn("ledger spool backlog over its threshold", "depth", depth, "oldest", oldest)
	return nil
}
