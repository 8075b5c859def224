// Package store keeps tenants and API keys, behind one Store interface with a
// PostgreSQL implementation (pgx pool) and an embedded SQLite one (pure Go).
// Both run the same embedded migrations on open and pass one conformance
// suite (storetest).
//
// A key reads `sk-llm-<public id>_<secret>`; only SHA-256(secret) is stored.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
)

// Errors every implementation returns (wrapped) so callers can branch on them.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	// The authentication refusals are billing's (the gateway branches on
	// them); the same values, named here for the store's callers.
	ErrInvalidKey = billing.ErrInvalidKey
	ErrRevoked    = billing.ErrRevoked
	ErrExpired    = billing.ErrExpired
	// ErrSuspended: the key's tenant is suspended (SuspendTenant).
	ErrSuspended = billing.ErrSuspended
)

// Tenant is a customer account.
type Tenant struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Limits    billing.Limits `json:"limits"`
	CreatedAt time.Time      `json:"createdAt"`
	// SuspendedAt is set while the tenant is suspended.
	SuspendedAt *time.Time `json:"suspendedAt,omitempty"`
}

// Key is an API key's record; the secret itself is never stored.
type Key struct {
	ID         string         `json:"id"` // public id, the part after sk-llm-
	TenantID   string         `json:"tenantId"`
	TenantName string         `json:"tenant"`
	Name       string         `json:"name,omitempty"`
	Role       billing.Role   `json:"role"`
	Models     []string       `json:"models,omitempty"`
	Limits     billing.Limits `json:"limits"`
	ExpiresAt  *time.Time     `json:"expiresAt,omitempty"`
	RevokedAt  *time.Time     `json:"revokedAt,omitempty"`
	CreatedAt  time.Time      `json:"createdAt"`
	SecretHash []byte         `json:"-"`
	// Priority in the admission queue: high, normal or low; "" = not set.
	Priority string `json:"priority,omitempty"`
}

// NewKey describes a key to create.
type NewKey struct {
	Tenant    string // tenant name or id
	Name      string
	Role      billing.Role // "" is billing.RoleUser
	Models    []string
	Limits    billing.Limits
	ExpiresAt *time.Time
	Priority  string // high, normal, low or "" (not set)
	// Import, when set, is an existing full key (sk-llm-<id>_<secret>) to
	// store instead of generating one: a bootstrap key from a Secret.
	Import string
}

// KeyUpdate changes a key in place (the admin API's PATCH); a nil field is
// left as it is.
type KeyUpdate struct {
	Models *[]string // an empty list means every model
	Limits *billing.Limits
	// Priority: high, normal, low, or "" to unset it.
	Priority *string
}

// Store is the tenants-and-keys store.
type Store interface {
	CreateTenant(ctx context.Context, name string, limits billing.Limits) (Tenant, error)
	// GetTenant finds a tenant by id or name.
	GetTenant(ctx context.Context, nameOrID string) (Tenant, error)
	ListTenants(ctx context.Context) ([]Tenant, error)
	SetTenantLimits(ctx context.Context, nameOrID string, l billing.Limits) (Tenant, error)
	// SuspendTenant makes every key of the tenant fail to authenticate
	// with ErrSuspended (within the authenticator's cache TTL); keys,
	// limits and ledger are kept. Suspending twice keeps the first time.
	SuspendTenant(ctx context.Context, nameOrID string) (Tenant, error)
	// ResumeTenant lifts a suspension; resuming an active tenant is no error.
	ResumeTenant(ctx context.Context, nameOrID string) (Tenant, error)

	// CreateKey stores a new key and returns it with the full secret key
	// string, which is never retrievable again.
	CreateKey(ctx context.Context, k NewKey) (Key, string, error)
	GetKey(ctx context.Context, id string) (Key, error)
	// LookupKey returns a key with its tenant in one round trip: the
	// authenticator's cache-miss path.
	LookupKey(ctx context.Context, id string) (Key, Tenant, error)
	// ListKeys lists keys of one tenant (name or id), or all when tenant is "".
	ListKeys(ctx context.Context, tenant string) ([]Key, error)
	RevokeKey(ctx context.Context, id string) error
	SetKeyLimits(ctx context.Context, id string, l billing.Limits) (Key, error)
	UpdateKey(ctx context.Context, id string, u KeyUpdate) (Key, error)

	// AppendAudit adds a record to the append-only audit log and returns
	// it with its ID (and Time, when left zero). It refuses a record that
	// contains an API key.
	AppendAudit(ctx context.Context, r AuditRecord) (AuditRecord, error)
	// ListAudit returns audit records newest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditRecord, error)

	Ping(ctx context.Context) error
	Close() error
}
