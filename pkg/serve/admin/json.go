package admin

import (
	"encoding/json"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/store"
)

// The admin API's JSON is snake_case like the rest of the OpenAI-shaped API,
// so it has its own types instead of the store's (camelCase) encodings.

type tenantJSON struct {
	Object         string     `json:"object"`
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Status         string     `json:"status"` // active | suspended
	RPM            int64      `json:"rpm"`
	TPM            int64      `json:"tpm"`
	MaxConcurrency int64      `json:"max_concurrency"`
	BatchRPM       int64      `json:"batch_rpm"`
	BatchTPM       int64      `json:"batch_tpm"`
	CreatedAt      time.Time  `json:"created_at"`
	SuspendedAt    *time.Time `json:"suspended_at,omitempty"`
}

func tenantOut(t store.Tenant) tenantJSON {
	status := "active"
	if t.SuspendedAt != nil {
		status = "suspended"
	}
	return tenantJSON{Object: "tenant", ID: t.ID, Name: t.Name, Status: status, RPM: t.Limits.RPM, TPM: t.Limits.TPM,
		MaxConcurrency: t.Limits.MaxConcurrency, BatchRPM: t.Limits.BatchRPM, BatchTPM: t.Limits.BatchTPM,
		CreatedAt: t.CreatedAt, SuspendedAt: t.SuspendedAt}
}

// keyJSON never carries the secret or its hash; only the create answer adds
// the secret, once (createdKeyJSON).
type keyJSON struct {
	Object         string     `json:"object"`
	ID             string     `json:"id"`
	Tenant         string     `json:"tenant"`
	Name           string     `json:"name,omitempty"`
	Role           string     `json:"role"`
	Status         string     `json:"status"` // active | revoked | expired
	Models         []string   `json:"models"` // [] = every model
	RPM            int64      `json:"rpm"`
	TPM            int64      `json:"tpm"`
	MaxConcurrency int64      `json:"max_concurrency"`
	BatchRPM       int64      `json:"batch_rpm"`
	BatchTPM       int64      `json:"batch_tpm"`
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
	Priority       string     `json:"priority,omitempty"` // high | normal | low; absent = not set
}

type createdKeyJSON struct {
	keyJSON
	Key string `json:"key"`
}

func keyOut(k store.Key, now time.Time) keyJSON {
	status := "active"
	switch {
	case k.RevokedAt != nil:
		status = "revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		status = "expired"
	}
	models := k.Models
	if models == nil {
		models = []string{}
	}
	return keyJSON{Object: "api_key", ID: k.ID, Tenant: k.TenantName, Name: k.Name, Role: string(k.Role), Status: status,
		Models: models, RPM: k.Limits.RPM, TPM: k.Limits.TPM, MaxConcurrency: k.Limits.MaxConcurrency,
		BatchRPM: k.Limits.BatchRPM, BatchTPM: k.Limits.BatchTPM, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, Priority: k.Priority}
}

type auditJSON struct {
	Object    string          `json:"object"`
	ID        int64           `json:"id"`
	Time      time.Time       `json:"time"`
	Actor     string          `json:"actor"`
	Action    string          `json:"action"`
	Target    string          `json:"target,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	Details   json.RawMessage `json:"details,omitempty"`
}

func auditOut(a store.AuditRecord) auditJSON {
	return auditJSON{Object: "audit_record", ID: a.ID, Time: a.Time, Actor: a.Actor, Action: a.Action, Target: a.Target,
		RequestID: a.RequestID, Details: a.Details}
}

// list is OpenAI's list envelope; NextBefore is the audit page cursor.
type list[T any] struct {
	Object     string `json:"object"`
	Data       []T    `json:"data"`
	NextBefore int64  `json:"next_before,omitempty"`
}

func listOf[T any](data []T) list[T] {
	if data == nil {
		data = []T{}
	}
	return list[T]{Object: "list", Data: data}
}
