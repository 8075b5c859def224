package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"time"
)

// The alerts outbox (tables alert_events, alert_deliveries and
// alert_thresholds, migration 00205). Events are written in the same
// transaction as the ledger change that causes them, so an event exists if
// and only if its change committed; pkg/billing/alerts delivers them.

// Event types.
const (
	EventBalanceLow      = "balance.low"
	EventBudgetThreshold = "budget.threshold"
	EventPaymentCredited = "payment.credited"
	EventKeyExpiring     = "key.expiring"
	EventSpoolBacklog    = "spool.backlog"
	// EventBillingDrift: `llmctl ledger reconcile` found the ledger and a
	// backend's token counters apart (pkg/billing/reconcile).
	EventBillingDrift = "billing.drift"
)

// EventTypes lists every event type, for validating configuration.
func EventTypes() []string {
	return []string{EventBalanceLow, EventBudgetThreshold, EventPaymentCredited, EventKeyExpiring, EventSpoolBacklog, EventBillingDrift}
}

// EventID derives an event's id from its type and what makes it unique (an
// entry key, a key id and expiry, ...): the same cause always yields the
// same id, so a replayed cause writes no second event and receivers dedupe
// by webhook-id. The PostgreSQL Apply computes the same id in SQL
// (pgApplyEvents).
func EventID(typ string, parts ...string) string {
	sum := sha256.Sum256([]byte(typ + ":" + strings.Join(parts, ":")))
	return "evt_" + hex.EncodeToString(sum[:16])
}

// Event is one row of the outbox.
type Event struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	TenantID string          `json:"tenant,omitempty"`
	Payload  json.RawMessage `json:"data"`
	Time     time.Time       `json:"time"`
}

// DeliveryStatus is where a delivery stands.
type DeliveryStatus string

// Delivery states: pending until a 2xx (delivered) or until retries have
// run out (failed).
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Delivery is one event sent to one endpoint.
type Delivery struct {
	ID          int64          `json:"id"`
	EventID     string         `json:"eventId"`
	EventType   string         `json:"type"`
	TenantID    string         `json:"tenant,omitempty"`
	Endpoint    string         `json:"endpoint"`
	Status      DeliveryStatus `json:"status"`
	Attempts    int            `json:"attempts"`
	NextAttempt time.Time      `json:"nextAttemptAt"`
	LastStatus  int            `json:"lastStatusCode,omitempty"`
	LastError   string         `json:"lastError,omitempty"`
	DeliveredAt *time.Time     `json:"deliveredAt,omitempty"`
	Created     time.Time      `json:"created"`
	// WindowStart is when retries started counting (creation or the last
	// redeliver); Event is what is sent. Both are filled by Claim.
	WindowStart time.Time `json:"-"`
	Event       Event     `json:"-"`
	lease       string
}

// Route sends events of Types (all when empty) to Endpoint.
type Route struct {
	Endpoint string
	Types    []string
}

func (r Route) wants(typ string) bool {
	if len(r.Types) == 0 {
		return true
	}
	for _, t := range r.Types {
		if t == typ {
			return true
		}
	}
	return false
}

// Outcome is the result of one attempt at a claimed delivery.
type Outcome struct {
	Status     DeliveryStatus
	StatusCode int
	Err        string
	Next       time.Time // the next attempt, when Status is pending
	At         time.Time
}

// DeliveryFilter selects deliveries, newest first; zero fields select all.
type DeliveryFilter struct {
	Status   DeliveryStatus
	TenantID string
	BeforeID int64
	Limit    int
}

// ErrNoDelivery reports a delivery id that does not exist.
var ErrNoDelivery = errors.New("no such delivery")

// Outbox is the alerts side of the ledger database; both stores implement
// it (OutboxOf).
type Outbox interface {
	// SetLowBalance sets the default balance.low threshold Apply uses for
	// tenants without their own (0: only tenants with their own).
	SetLowBalance(Micros)
	// LowBalance is that default.
	LowBalance() Micros
	// Emit writes an event unless one with its id exists; it reports
	// whether it was new.
	Emit(ctx context.Context, ev Event) (bool, error)
	// Events lists events of a type ("" for all), oldest first.
	Events(ctx context.Context, typ string) ([]Event, error)
	// Dispatch creates the deliveries of events not yet dispatched, one
	// per matching route; events older than maxAge are marked dispatched
	// without deliveries (a backlog from before alerts were configured).
	Dispatch(ctx context.Context, routes []Route, now time.Time, maxAge time.Duration) (int, error)
	// Claim leases up to limit due deliveries to endpoint until now+lease;
	// no other claim returns them before that, on any replica.
	Claim(ctx context.Context, endpoint string, now time.Time, lease time.Duration, limit int) ([]Delivery, error)
	// Finish records an attempt at a claimed delivery; it is ignored when
	// the lease was lost.
	Finish(ctx context.Context, d Delivery, o Outcome) error
	// Release gives a claimed delivery back unattempted, due as it was.
	Release(ctx context.Context, d Delivery) error
	Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)
	// Redeliver makes a delivery pending and due now, with a fresh
	// retry window.
	Redeliver(ctx context.Context, id int64, now time.Time) (Delivery, error)
	// SetTenantLowBalance sets a tenant's own threshold; nil removes it.
	SetTenantLowBalance(ctx context.Context, tenantID string, v *Micros, now time.Time) error
	// TenantLowBalance returns the tenant's own threshold, if it has one.
	TenantLowBalance(ctx context.Context, tenantID string) (Micros, bool, error)
}

// OutboxOf returns the outbox of a store opened by this package.
func OutboxOf(s Store) (Outbox, bool) {
	switch s := s.(type) {
	case *sqliteStore:
		return outbox{db: sqlOB{s.db}, st: &s.alerts}, true
	case *pgStore:
		return outbox{db: pgOB{s.pool}, st: &s.alerts}, true
	}
	return nil, false
}

// alertState is what a store keeps for the outbox: the default threshold,
// set once at startup (atomic: Apply reads it from writer goroutines).
type alertState struct {
	low atomic.Int64
}

func (a *alertState) SetLowBalance(m Micros) { a.low.Store(int64(m)) }
func (a *alertState) lowBalance() Micros     { return Micros(a.low.Load()) }

// creditedPayload and lowPayload are the data of payment.credited and
// balance.low; the PostgreSQL Apply builds the same objects in SQL.
type creditedPayload struct {
	Tenant   string `json:"tenant"`
	EntryKey string `json:"entryKey"`
	Amount   string `json:"amount"`
	Reason   string `json:"reason"`
}

type lowPayload struct {
	Tenant    string `json:"tenant"`
	EntryKey  string `json:"entryKey"`
	Balance   string `json:"balance"`
	Threshold string `json:"threshold"`
}

// entryEvents returns the events an entry just inserted causes, given the
// tenant's balance after it and its low-balance threshold (thr() is only
// called when the entry lowers the balance).
func entryEvents(e Entry, after Micros, thr func() (Micros, error), now time.Time) ([]Event, error) {
	var out []Event
	mk := func(typ string, payload any) error {
		b, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		out = append(out, Event{ID: EventID(typ, e.Key), Type: typ, TenantID: e.TenantID, Payload: b, Time: now})
		return nil
	}
	if e.Kind == KindCredit {
		if err := mk(EventPaymentCredited, creditedPayload{e.TenantID, e.Key, e.Amount.String(), e.Reason}); err != nil {
			return nil, err
		}
	}
	if e.Amount < 0 {
		t, err := thr()
		if err != nil {
			return nil, err
		}
		// One event per crossing: only the entry that takes the balance
		// from at or above the threshold to below it; a balance that stays
		// low sends nothing more, and one that recovers re-arms.
		if before := after - e.Amount; t > 0 && before >= t && after < t {
			if err := mk(EventBalanceLow, lowPayload{e.TenantID, e.Key, after.String(), t.String()}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// pgApplyEvents extends pgApply's WITH list ($13 default threshold, $14
// now): payment.credited for every new credit, balance.low for each tenant
// whose balance the batch took from at or above its threshold to below it
// (the event id from the smallest key among the batch's new entries of the
// tenant: new by construction). Ids and payloads match EventID and
// entryEvents; the conformance suite compares both dialects.
const pgApplyEvents = `
, credited AS (
    INSERT INTO alert_events (id, type, tenant_id, payload, created_at)
    SELECT 'evt_' || left(encode(sha256(convert_to('payment.credited:' || i.idem_key, 'UTF8')), 'hex'), 32), 'payment.credited', i.tenant_id,
        jsonb_build_object('tenant', i.tenant_id, 'entryKey', i.idem_key, 'amount', round(i.amount::numeric / 1000000, 6)::text, 'reason', i.reason)::text,
        $14::bigint
    FROM ins i WHERE i.kind = 'credit'
    ON CONFLICT (id) DO NOTHING
    RETURNING 1
), low AS (
    INSERT INTO alert_events (id, type, tenant_id, payload, created_at)
    SELECT 'evt_' || left(encode(sha256(convert_to('balance.low:' || c.k, 'UTF8')), 'hex'), 32), 'balance.low', c.tenant_id,
        jsonb_build_object('tenant', c.tenant_id, 'entryKey', c.k, 'balance', round(c.after::numeric / 1000000, 6)::text, 'threshold', round(c.thr::numeric / 1000000, 6)::text)::text,
        $14::bigint
    FROM (SELECT u.tenant_id, u.balance AS after, u.balance - d.b AS before,
                 COALESCE((SELECT t.low_balance FROM alert_thresholds t WHERE t.tenant_id = u.tenant_id), $13::bigint) AS thr,
                 (SELECT min(i.idem_key) FROM ins i WHERE i.tenant_id = u.tenant_id) AS k
          FROM upd u JOIN delta d ON d.tenant_id = u.tenant_id) c
    WHERE c.thr > 0 AND c.before >= c.thr AND c.after < c.thr AND c.k IS NOT NULL
    ON CONFLICT (id) DO NOTHING
    RETURNING 1
)`

// Backlog is the spool's depth and the age of its oldest entry not yet in
// the database: what spool.backlog alerts on.
func (l *Ledger) Backlog() (int, time.Duration) { return l.Depth(), l.oldest() }
