package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// AuditRecord is one admin write: who (Actor: the caller's key id, or
// AuditActorCLI), what (Action, Target, Details) and when. It never holds a
// key's secret or hash: AppendAudit refuses a record containing a key.
type AuditRecord struct {
	ID        int64     `json:"id"` // increasing; the cursor of AuditFilter.Before
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Target    string    `json:"target,omitempty"`
	RequestID string    `json:"requestId,omitempty"`
	// Details is a JSON object; empty is stored as {}.
	Details json.RawMessage `json:"details,omitempty"`
}

// AuditActorCLI is the actor of writes made with the llmctl CLI on --db.
const AuditActorCLI = "cli"

// Audit actions written by the CLI and the admin API.
const (
	AuditTenantCreate  = "tenant.create"
	AuditTenantLimits  = "tenant.limits"
	AuditTenantSuspend = "tenant.suspend"
	AuditTenantResume  = "tenant.resume"
	AuditKeyCreate     = "key.create"
	AuditKeyRevoke     = "key.revoke"
	AuditKeyUpdate     = "key.update"
	AuditCredit        = "credit"
)

// AuditFilter selects audit records, newest first.
type AuditFilter struct {
	Since time.Time // inclusive; zero: from the start
	Until time.Time // exclusive; zero: up to now
	// Limit ≤ 0 is DefaultAuditLimit; more than MaxAuditLimit is clamped.
	Limit int
	// Before, when > 0, returns only records with ID < Before: pass the
	// last ID of a page to get the next one.
	Before int64
}

// Page sizes of ListAudit.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// maxAuditDetails bounds one record's details: the log is for what
// changed, not for request bodies.
const maxAuditDetails = 16 << 10

func validateAudit(r AuditRecord) error {
	if strings.TrimSpace(r.Actor) == "" || strings.TrimSpace(r.Action) == "" {
		return fmt.Errorf("audit record: actor and action are required")
	}
	if len(r.Details) > maxAuditDetails {
		return fmt.Errorf("audit record: details over %d bytes", maxAuditDetails)
	}
	if len(r.Details) > 0 && (!json.Valid(r.Details) || !bytes.HasPrefix(bytes.TrimSpace(r.Details), []byte("{"))) {
		return fmt.Errorf("audit record: details must be a JSON object")
	}
	// A key in the log would outlive its revocation: refuse anything that
	// carries one, whichever field it was put in.
	for _, f := range []string{r.Actor, r.Action, r.Target, r.RequestID, string(r.Details)} {
		if strings.Contains(f, KeyPrefix) {
			return fmt.Errorf("audit record: must not contain an API key (%s…)", KeyPrefix)
		}
	}
	return nil
}

func (s *sqlStore) AppendAudit(ctx context.Context, r AuditRecord) (AuditRecord, error) {
	if err := validateAudit(r); err != nil {
		return AuditRecord{}, err
	}
	if len(r.Details) == 0 {
		r.Details = json.RawMessage("{}")
	}
	if r.Time.IsZero() {
		r.Time = s.now()
	}
	r.Time = micros(r.Time)
	err := s.c.queryRow(ctx, `INSERT INTO audit_log (created_at, actor, action, target, request_id, details)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq`,
		r.Time.UnixMicro(), r.Actor, r.Action, r.Target, r.RequestID, string(r.Details)).Scan(&r.ID)
	if err != nil {
		return AuditRecord{}, fmt.Errorf("append audit record: %w", err)
	}
	return r, nil
}

func (s *sqlStore) ListAudit(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return nil, fmt.Errorf("audit: since (%s) must be before until (%s)",
			f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	limit = min(limit, MaxAuditLimit)
	q := `SELECT seq, created_at, actor, action, target, request_id, details FROM audit_log WHERE 1 = 1`
	var args []any
	where := func(cond string, v any) {
		args = append(args, v)
		q += fmt.Sprintf(" AND "+cond, len(args))
	}
	if !f.Since.IsZero() {
		where("created_at >= $%d", f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		where("created_at < $%d", f.Until.UnixMicro())
	}
	if f.Before > 0 {
		where("seq < $%d", f.Before)
	}
	args = append(args, limit)
	r, err := s.c.query(ctx, q+fmt.Sprintf(" ORDER BY seq DESC LIMIT $%d", len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("list audit records: %w", err)
	}
	defer r.Close()
	out := []AuditRecord{}
	for r.Next() {
		var (
			a       AuditRecord
			created int64
			details string
		)
		if err := r.Scan(&a.ID, &created, &a.Actor, &a.Action, &a.Target, &a.RequestID, &details); err != nil {
			return nil, fmt.Errorf("list audit records: %w", err)
		}
		a.Time, a.Details = time.UnixMicro(created).UTC(), json.RawMessage(details)
		out = append(out, a)
	}
	return out, r.Err()
}
