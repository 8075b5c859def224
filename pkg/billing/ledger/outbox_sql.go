package ledger

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// obDB runs the outbox's queries on either dialect: a connection pool or a
// transaction already open (Apply's, Reserve's). Queries are written with
// $N placeholders; SQLite reads them as ?N.
type obDB interface {
	exec(ctx context.Context, q string, args ...any) (int64, error)
	query(ctx context.Context, q string, args []any, each func(scan func(...any) error) error) error
	// tx runs fn in a transaction (on a transaction: in it).
	tx(ctx context.Context, fn func(obDB) error) error
	// pg reports PostgreSQL, for the few clauses SQLite lacks.
	pg() bool
}

type sqlExecQuerier interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// sqlOB is a SQLite *sql.DB or *sql.Tx.
type sqlOB struct{ q sqlExecQuerier }

func (s sqlOB) pg() bool { return false }

func (s sqlOB) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := s.q.ExecContext(ctx, strings.ReplaceAll(q, "$", "?"), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s sqlOB) query(ctx context.Context, q string, args []any, each func(scan func(...any) error) error) error {
	rows, err := s.q.QueryContext(ctx, strings.ReplaceAll(q, "$", "?"), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return eachRow(rows, each)
}

func (s sqlOB) tx(ctx context.Context, fn func(obDB) error) error {
	db, ok := s.q.(*sql.DB)
	if !ok {
		return fn(s)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(sqlOB{tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

type pgExecQuerier interface {
	Exec(ctx context.Context, q string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, q string, args ...any) (pgx.Rows, error)
}

// pgOB is a pgx pool or transaction.
type pgOB struct{ q pgExecQuerier }

func (p pgOB) pg() bool { return true }

func (p pgOB) exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := p.q.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (p pgOB) query(ctx context.Context, q string, args []any, each func(scan func(...any) error) error) error {
	rows, err := p.q.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return eachRow(rows, each)
}

func (p pgOB) tx(ctx context.Context, fn func(obDB) error) error {
	pool, ok := p.q.(*pgxpool.Pool)
	if !ok {
		return fn(p)
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return fn(pgOB{tx}) })
}

// emitEvent writes ev on db unless an event with its id exists, and
// reports whether it was new. Called inside a ledger transaction it makes
// the event part of that change: Apply uses it for SQLite, and a check in
// Reserve's transaction can use it for budget.threshold (id from EventID).
func emitEvent(ctx context.Context, db obDB, ev Event) (bool, error) {
	if ev.ID == "" || ev.Type == "" {
		return false, fmt.Errorf("alert event without id or type")
	}
	payload := string(ev.Payload)
	if payload == "" {
		payload = "{}"
	}
	n, err := db.exec(ctx, `INSERT INTO alert_events (id, type, tenant_id, payload, created_at)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
		ev.ID, ev.Type, ev.TenantID, payload, ev.Time.UnixMicro())
	if err != nil {
		return false, fmt.Errorf("write alert event %s: %w", ev.Type, err)
	}
	return n == 1, nil
}

// applyEntryEvents writes the events of an entry Apply just inserted, in
// Apply's transaction (SQLite; PostgreSQL does it in pgApplyEvents).
func applyEntryEvents(ctx context.Context, db obDB, a *alertState, e Entry, after Micros) error {
	thr := func() (Micros, error) {
		v, ok, err := tenantLowBalance(ctx, db, e.TenantID)
		if err != nil || ok {
			return v, err
		}
		return a.lowBalance(), nil
	}
	evs, err := entryEvents(e, after, thr, time.Now())
	if err != nil {
		return err
	}
	for _, ev := range evs {
		if _, err := emitEvent(ctx, db, ev); err != nil {
			return err
		}
	}
	return nil
}

func tenantLowBalance(ctx context.Context, db obDB, tenantID string) (Micros, bool, error) {
	var (
		v     Micros
		found bool
	)
	err := db.query(ctx, tenantLowBalanceQuery, []any{tenantID},
		func(scan func(...any) error) error { found = true; return scan(&v) })
	return v, found, err
}

// outbox implements Outbox over a store's database.
type outbox struct {
	db obDB
	st *alertState
}

func (o outbox) SetLowBalance(m Micros) { o.st.SetLowBalance(m) }
func (o outbox) LowBalance() Micros     { return o.st.lowBalance() }

func (o outbox) Emit(ctx context.Context, ev Event) (bool, error) {
	return emitEvent(ctx, o.db, ev)
}

func (o outbox) Events(ctx context.Context, typ string) ([]Event, error) {
	var out []Event
	err := o.db.query(ctx, `SELECT id, type, tenant_id, payload, created_at FROM alert_events
        WHERE $1 = '' OR type = $1 ORDER BY created_at, id`, []any{typ}, func(scan func(...any) error) error {
		var (
			ev      Event
			payload string
			at      int64
		)
		err := scan(&ev.ID, &ev.Type, &ev.TenantID, &payload, &at)
		ev.Payload, ev.Time = []byte(payload), time.UnixMicro(at).UTC()
		out = append(out, ev)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("alerts: list events: %w", err)
	}
	return out, nil
}

func (o outbox) Dispatch(ctx context.Context, routes []Route, now time.Time, maxAge time.Duration) (int, error) {
	created := 0
	err := o.db.tx(ctx, func(db obDB) error {
		created = 0
		type pending struct {
			id, typ string
			at      int64
		}
		var evs []pending
		lock := ""
		if db.pg() {
			// Replicas dispatching at once take different events.
			lock = " FOR UPDATE SKIP LOCKED"
		}
		err := db.query(ctx, `SELECT id, type, created_at FROM alert_events WHERE dispatched = 0
            ORDER BY created_at, id LIMIT 500`+lock, nil, func(scan func(...any) error) error {
			var p pending
			err := scan(&p.id, &p.typ, &p.at)
			evs = append(evs, p)
			return err
		})
		if err != nil {
			return err
		}
		oldest := now.Add(-maxAge).UnixMicro()
		for _, ev := range evs {
			if ev.at >= oldest {
				for _, r := range routes {
					if !r.wants(ev.typ) {
						continue
					}
					n, err := db.exec(ctx, `INSERT INTO alert_deliveries (event_id, endpoint, next_attempt_at, window_start, created_at)
                        VALUES ($1, $2, $3, $3, $3) ON CONFLICT (event_id, endpoint) DO NOTHING`, ev.id, r.Endpoint, now.UnixMicro())
					if err != nil {
						return err
					}
					created += int(n)
				}
			}
			if _, err := db.exec(ctx, `UPDATE alert_events SET dispatched = 1 WHERE id = $1`, ev.id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("alerts: dispatch events: %w", err)
	}
	return created, nil
}

const deliveryColumns = `d.id, d.event_id, e.type, e.tenant_id, d.endpoint, d.status, d.attempts, d.next_attempt_at,
    d.last_status, d.last_error, d.delivered_at, d.created_at, d.window_start, d.lease_owner, e.payload, e.created_at`

func scanDelivery(scan func(...any) error) (Delivery, error) {
	var (
		d                                      Delivery
		status, payload                        string
		next, delivered, created, window, evAt int64
	)
	if err := scan(&d.ID, &d.EventID, &d.EventType, &d.TenantID, &d.Endpoint, &status, &d.Attempts, &next,
		&d.LastStatus, &d.LastError, &delivered, &created, &window, &d.lease, &payload, &evAt); err != nil {
		return Delivery{}, err
	}
	d.Status = DeliveryStatus(status)
	d.NextAttempt = time.UnixMicro(next).UTC()
	d.Created = time.UnixMicro(created).UTC()
	d.WindowStart = time.UnixMicro(window).UTC()
	if delivered != 0 {
		t := time.UnixMicro(delivered).UTC()
		d.DeliveredAt = &t
	}
	d.Event = Event{ID: d.EventID, Type: d.EventType, TenantID: d.TenantID, Payload: []byte(payload), Time: time.UnixMicro(evAt).UTC()}
	return d, nil
}

func (o outbox) selectDeliveries(ctx context.Context, db obDB, where string, args ...any) ([]Delivery, error) {
	var out []Delivery
	err := db.query(ctx, `SELECT `+deliveryColumns+` FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id
        WHERE `+where, args, func(scan func(...any) error) error {
		d, err := scanDelivery(scan)
		out = append(out, d)
		return err
	})
	return out, err
}

func (o outbox) Claim(ctx context.Context, endpoint string, now time.Time, lease time.Duration, limit int) ([]Delivery, error) {
	// The lease token is unique per claim, so Finish can tell whether the
	// lease is still ours.
	token := rand.Text()
	var out []Delivery
	err := o.db.tx(ctx, func(db obDB) error {
		lock := ""
		if db.pg() {
			lock = " FOR UPDATE SKIP LOCKED"
		}
		_, err := db.exec(ctx, `UPDATE alert_deliveries SET lease_owner = $1, lease_until = $2
            WHERE id IN (SELECT id FROM alert_deliveries WHERE status = 'pending' AND endpoint = $3
                AND next_attempt_at <= $4 AND lease_until <= $4 ORDER BY next_attempt_at, id LIMIT $5`+lock+`)`,
			token, now.Add(lease).UnixMicro(), endpoint, now.UnixMicro(), limit)
		if err != nil {
			return err
		}
		out, err = o.selectDeliveries(ctx, db, `d.lease_owner = $1 AND d.status = 'pending' ORDER BY d.next_attempt_at, d.id`, token)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("alerts: claim deliveries: %w", err)
	}
	return out, nil
}

func (o outbox) Finish(ctx context.Context, d Delivery, r Outcome) error {
	var delivered int64
	if r.Status == DeliveryDelivered {
		delivered = r.At.UnixMicro()
	}
	_, err := o.db.exec(ctx, `UPDATE alert_deliveries SET status = $1, attempts = attempts + 1, next_attempt_at = $2,
        last_status = $3, last_error = $4, delivered_at = $5, lease_owner = '', lease_until = 0
        WHERE id = $6 AND lease_owner = $7 AND status = 'pending'`,
		string(r.Status), r.Next.UnixMicro(), r.StatusCode, r.Err, delivered, d.ID, d.lease)
	if err != nil {
		return fmt.Errorf("alerts: record delivery %d: %w", d.ID, err)
	}
	return nil
}

func (o outbox) Release(ctx context.Context, d Delivery) error {
	_, err := o.db.exec(ctx, `UPDATE alert_deliveries SET lease_owner = '', lease_until = 0
        WHERE id = $1 AND lease_owner = $2 AND status = 'pending'`, d.ID, d.lease)
	if err != nil {
		return fmt.Errorf("alerts: release delivery %d: %w", d.ID, err)
	}
	return nil
}

func (o outbox) Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error) {
	out, err := o.selectDeliveries(ctx, o.db, `($1 = '' OR d.status = $1) AND ($2 = '' OR e.tenant_id = $2) AND d.id < $3
        ORDER BY d.id DESC LIMIT $4`, string(f.Status), f.TenantID, beforeOrAll(f.BeforeID), limitOrAll(f.Limit))
	if err != nil {
		return nil, fmt.Errorf("alerts: list deliveries: %w", err)
	}
	return out, nil
}

func (o outbox) Redeliver(ctx context.Context, id int64, now time.Time) (Delivery, error) {
	var out []Delivery
	err := o.db.tx(ctx, func(db obDB) error {
		_, err := db.exec(ctx, `UPDATE alert_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1,
            window_start = $1, lease_owner = '', lease_until = 0 WHERE id = $2`, now.UnixMicro(), id)
		if err != nil {
			return err
		}
		out, err = o.selectDeliveries(ctx, db, `d.id = $1`, id)
		return err
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("alerts: redeliver %d: %w", id, err)
	}
	if len(out) == 0 {
		return Delivery{}, fmt.Errorf("alerts: redeliver %d: %w", id, ErrNoDelivery)
	}
	return out[0], nil
}

func (o outbox) SetTenantLowBalance(ctx context.Context, tenantID string, v *Micros, now time.Time) error {
	var err error
	switch {
	case v == nil:
		_, err = o.db.exec(ctx, `DELETE FROM alert_thresholds WHERE tenant_id = $1`, tenantID)
	case *v < 0:
		return fmt.Errorf("alerts: low-balance threshold of %s must not be negative, got %s", tenantID, *v)
	default:
		_, err = o.db.exec(ctx, `INSERT INTO alert_thresholds (tenant_id, low_balance, updated_at) VALUES ($1, $2, $3)
            ON CONFLICT (tenant_id) DO UPDATE SET low_balance = excluded.low_balance, updated_at = excluded.updated_at`,
			tenantID, int64(*v), now.UnixMicro())
	}
	if err != nil {
		return fmt.Errorf("alerts: set low-balance threshold of %s: %w", tenantID, err)
	}
	return nil
}

func (o outbox) TenantLowBalance(ctx context.Context, tenantID string) (Micros, bool, error) {
	v, ok, err := tenantLowBalance(ctx, o.db, tenantID)
	if err != nil {
		return 0, false, fmt.Errorf("alerts: low-balance threshold of %s: %w", tenantID, err)
	}
	return v, ok, nil
}
