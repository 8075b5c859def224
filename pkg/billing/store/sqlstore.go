package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/llmctl/llmctl/pkg/billing"
)

// sqlStore implements Store over either database through conn.
type sqlStore struct {
	c   conn
	now func() time.Time
}

const tenantCols = `id, name, rpm, tpm, max_concurrency, created_at, suspended_at, batch_rpm, batch_tpm`

const keyCols = `k.id, k.tenant_id, t.name, k.name, k.role, k.secret_hash, k.models, k.rpm, k.tpm,
	k.max_concurrency, k.expires_at, k.revoked_at, k.created_at, k.priority, k.batch_rpm, k.batch_tpm`

// ValidateName checks a tenant or key name: printable, 1–64 runes, no spaces
// at the ends, and not shaped like a generated id.
func ValidateName(kind, name string) error {
	switch {
	case name == "" || strings.TrimSpace(name) != name:
		return fmt.Errorf("%s name %q: must be non-empty without leading or trailing spaces", kind, name)
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > 64:
		return fmt.Errorf("%s name: must be valid UTF-8, at most 64 characters", kind)
	case strings.HasPrefix(name, "ten_"):
		return fmt.Errorf("%s name %q: the prefix ten_ is reserved for ids", kind, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s name: control characters are not allowed", kind)
		}
	}
	return nil
}

func validateLimits(l billing.Limits) error {
	if l.RPM < 0 || l.TPM < 0 || l.MaxConcurrency < 0 || l.BatchRPM < 0 || l.BatchTPM < 0 {
		return fmt.Errorf("limits must not be negative (rpm=%d tpm=%d max-concurrency=%d batch-rpm=%d batch-tpm=%d)",
			l.RPM, l.TPM, l.MaxConcurrency, l.BatchRPM, l.BatchTPM)
	}
	return nil
}

func (s *sqlStore) CreateTenant(ctx context.Context, name string, l billing.Limits) (Tenant, error) {
	if err := ValidateName("tenant", name); err != nil {
		return Tenant{}, err
	}
	if err := validateLimits(l); err != nil {
		return Tenant{}, err
	}
	id, err := newID("ten_")
	if err != nil {
		return Tenant{}, err
	}
	t := Tenant{ID: id, Name: name, Limits: l, CreatedAt: micros(s.now())}
	_, err = s.c.exec(ctx, `INSERT INTO tenants (id, name, rpm, tpm, max_concurrency, created_at, batch_rpm, batch_tpm)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		t.ID, t.Name, l.RPM, l.TPM, l.MaxConcurrency, t.CreatedAt.UnixMicro(), l.BatchRPM, l.BatchTPM)
	if errors.Is(err, ErrConflict) {
		return Tenant{}, fmt.Errorf("tenant %q: %w", name, ErrConflict)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("create tenant: %w", err)
	}
	return t, nil
}

func scanTenant(sc scanner) (Tenant, error) {
	var t Tenant
	var created int64
	var suspended *int64
	if err := sc.Scan(&t.ID, &t.Name, &t.Limits.RPM, &t.Limits.TPM, &t.Limits.MaxConcurrency, &created, &suspended,
		&t.Limits.BatchRPM, &t.Limits.BatchTPM); err != nil {
		return Tenant{}, err
	}
	t.CreatedAt = time.UnixMicro(created).UTC()
	t.SuspendedAt = fromMicros(suspended)
	return t, nil
}

func (s *sqlStore) GetTenant(ctx context.Context, nameOrID string) (Tenant, error) {
	t, err := scanTenant(s.c.queryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = $1 OR name = $1`, nameOrID))
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant %q: %w", nameOrID, err)
	}
	return t, nil
}

func (s *sqlStore) ListTenants(ctx context.Context) ([]Tenant, error) {
	r, err := s.c.query(ctx, `SELECT `+tenantCols+` FROM tenants ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer r.Close()
	out := []Tenant{}
	for r.Next() {
		t, err := scanTenant(r)
		if err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		out = append(out, t)
	}
	return out, r.Err()
}

func (s *sqlStore) SetTenantLimits(ctx context.Context, nameOrID string, l billing.Limits) (Tenant, error) {
	if err := validateLimits(l); err != nil {
		return Tenant{}, err
	}
	n, err := s.c.exec(ctx, `UPDATE tenants SET rpm = $2, tpm = $3, max_concurrency = $4, batch_rpm = $5, batch_tpm = $6
		WHERE id = $1 OR name = $1`, nameOrID, l.RPM, l.TPM, l.MaxConcurrency, l.BatchRPM, l.BatchTPM)
	if err != nil {
		return Tenant{}, fmt.Errorf("set tenant limits: %w", err)
	}
	if n == 0 {
		return Tenant{}, fmt.Errorf("tenant %q: %w", nameOrID, ErrNotFound)
	}
	return s.GetTenant(ctx, nameOrID)
}

func (s *sqlStore) SuspendTenant(ctx context.Context, nameOrID string) (Tenant, error) {
	// Only an active tenant is updated, so a second suspend keeps the first time.
	return s.setSuspended(ctx, nameOrID, `suspended_at = $2 WHERE (id = $1 OR name = $1) AND suspended_at IS NULL`,
		s.now().UnixMicro())
}

func (s *sqlStore) ResumeTenant(ctx context.Context, nameOrID string) (Tenant, error) {
	return s.setSuspended(ctx, nameOrID, `suspended_at = NULL WHERE id = $1 OR name = $1`)
}

func (s *sqlStore) setSuspended(ctx context.Context, nameOrID, set string, args ...any) (Tenant, error) {
	if _, err := s.c.exec(ctx, `UPDATE tenants SET `+set, append([]any{nameOrID}, args...)...); err != nil {
		return Tenant{}, fmt.Errorf("tenant %q: %w", nameOrID, err)
	}
	// No row updated is either unknown (ErrNotFound here) or already so.
	return s.GetTenant(ctx, nameOrID)
}

func (s *sqlStore) CreateKey(ctx context.Context, nk NewKey) (Key, string, error) {
	if nk.Name != "" {
		if err := ValidateName("key", nk.Name); err != nil {
			return Key{}, "", err
		}
	}
	if err := validateLimits(nk.Limits); err != nil {
		return Key{}, "", err
	}
	role, err := billing.ParseRole(string(nk.Role))
	if err != nil {
		return Key{}, "", err
	}
	if err := billing.CheckPriority(nk.Priority); err != nil {
		return Key{}, "", err
	}
	mj, err := modelsJSON(nk.Models)
	if err != nil {
		return Key{}, "", err
	}
	now := micros(s.now())
	if nk.ExpiresAt != nil && !nk.ExpiresAt.After(now) {
		return Key{}, "", fmt.Errorf("expiry %s is not in the future", nk.ExpiresAt.Format(time.RFC3339))
	}
	t, err := s.GetTenant(ctx, nk.Tenant)
	if err != nil {
		return Key{}, "", err
	}
	id, full, hash, err := newKeyMaterial()
	if nk.Import != "" {
		var secret string
		if id, secret, err = ParseKey(nk.Import); err != nil {
			return Key{}, "", fmt.Errorf("import key: %w", err)
		}
		full, hash = nk.Import, HashSecret(secret)
	}
	if err != nil {
		return Key{}, "", err
	}
	k := Key{ID: id, TenantID: t.ID, TenantName: t.Name, Name: nk.Name, Role: role, Models: nk.Models,
		Limits: nk.Limits, CreatedAt: now, SecretHash: hash, Priority: nk.Priority}
	var exp *int64
	if nk.ExpiresAt != nil {
		e := micros(*nk.ExpiresAt)
		k.ExpiresAt = &e
		v := e.UnixMicro()
		exp = &v
	}
	_, err = s.c.exec(ctx, `INSERT INTO api_keys (id, tenant_id, name, role, secret_hash, models, rpm, tpm,
		max_concurrency, expires_at, created_at, priority, batch_rpm, batch_tpm)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		k.ID, k.TenantID, k.Name, string(role), hash, mj, k.Limits.RPM, k.Limits.TPM, k.Limits.MaxConcurrency,
		exp, now.UnixMicro(), k.Priority, k.Limits.BatchRPM, k.Limits.BatchTPM)
	if errors.Is(err, ErrConflict) {
		return Key{}, "", fmt.Errorf("key %s: %w", k.ID, ErrConflict)
	}
	if err != nil {
		return Key{}, "", fmt.Errorf("create key: %w", err)
	}
	return k, full, nil
}

// modelsJSON checks a key's model list and encodes it as stored.
func modelsJSON(models []string) (string, error) {
	for _, m := range models {
		if strings.TrimSpace(m) == "" || m != strings.TrimSpace(m) {
			return "", fmt.Errorf("model name %q: must be non-empty without surrounding spaces", m)
		}
	}
	if models == nil {
		models = []string{}
	}
	b, err := json.Marshal(models)
	return string(b), err
}

// scanKey reads keyCols, then any extra columns into extra.
func scanKey(sc scanner, extra ...any) (Key, error) {
	var (
		k          Key
		models     string
		exp, rev   *int64
		created    int64
		secretHash []byte
	)
	dest := append([]any{&k.ID, &k.TenantID, &k.TenantName, &k.Name, &k.Role, &secretHash, &models, &k.Limits.RPM,
		&k.Limits.TPM, &k.Limits.MaxConcurrency, &exp, &rev, &created, &k.Priority, &k.Limits.BatchRPM, &k.Limits.BatchTPM},
		extra...)
	if err := sc.Scan(dest...); err != nil {
		return Key{}, err
	}
	k.SecretHash = append([]byte(nil), secretHash...)
	if err := json.Unmarshal([]byte(models), &k.Models); err != nil {
		return Key{}, fmt.Errorf("key %s: corrupt model list: %w", k.ID, err)
	}
	if len(k.Models) == 0 {
		k.Models = nil
	}
	k.ExpiresAt, k.RevokedAt = fromMicros(exp), fromMicros(rev)
	k.CreatedAt = time.UnixMicro(created).UTC()
	return k, nil
}

func (s *sqlStore) GetKey(ctx context.Context, id string) (Key, error) {
	k, err := scanKey(s.c.queryRow(ctx, `SELECT `+keyCols+` FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = $1`, id))
	if err != nil {
		return Key{}, fmt.Errorf("key %q: %w", id, err)
	}
	return k, nil
}

func (s *sqlStore) LookupKey(ctx context.Context, id string) (Key, Tenant, error) {
	var t Tenant
	var tCreated int64
	var tSuspended *int64
	k, err := scanKey(s.c.queryRow(ctx, `SELECT `+keyCols+`, t.rpm, t.tpm, t.max_concurrency, t.created_at, t.suspended_at,
		t.batch_rpm, t.batch_tpm FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = $1`, id),
		&t.Limits.RPM, &t.Limits.TPM, &t.Limits.MaxConcurrency, &tCreated, &tSuspended, &t.Limits.BatchRPM, &t.Limits.BatchTPM)
	if err != nil {
		return Key{}, Tenant{}, fmt.Errorf("key %q: %w", id, err)
	}
	t.ID, t.Name, t.CreatedAt = k.TenantID, k.TenantName, time.UnixMicro(tCreated).UTC()
	t.SuspendedAt = fromMicros(tSuspended)
	return k, t, nil
}

func (s *sqlStore) ListKeys(ctx context.Context, tenant string) ([]Key, error) {
	q := `SELECT ` + keyCols + ` FROM api_keys k JOIN tenants t ON t.id = k.tenant_id`
	var args []any
	if tenant != "" {
		if _, err := s.GetTenant(ctx, tenant); err != nil {
			return nil, err
		}
		q += ` WHERE t.id = $1 OR t.name = $1`
		args = append(args, tenant)
	}
	r, err := s.c.query(ctx, q+` ORDER BY t.name, k.created_at, k.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer r.Close()
	out := []Key{}
	for r.Next() {
		k, err := scanKey(r)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		out = append(out, k)
	}
	return out, r.Err()
}

func (s *sqlStore) RevokeKey(ctx context.Context, id string) error {
	n, err := s.c.exec(ctx, `UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, s.now().UnixMicro())
	if err != nil {
		return fmt.Errorf("revoke key: %w", err)
	}
	if n == 0 {
		// Either unknown or already revoked: revoking twice is not an error.
		if _, err := s.GetKey(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

func (s *sqlStore) SetKeyLimits(ctx context.Context, id string, l billing.Limits) (Key, error) {
	if err := validateLimits(l); err != nil {
		return Key{}, err
	}
	n, err := s.c.exec(ctx, `UPDATE api_keys SET rpm = $2, tpm = $3, max_concurrency = $4, batch_rpm = $5, batch_tpm = $6
		WHERE id = $1`, id, l.RPM, l.TPM, l.MaxConcurrency, l.BatchRPM, l.BatchTPM)
	if err != nil {
		return Key{}, fmt.Errorf("set key limits: %w", err)
	}
	if n == 0 {
		return Key{}, fmt.Errorf("key %q: %w", id, ErrNotFound)
	}
	return s.GetKey(ctx, id)
}

func (s *sqlStore) UpdateKey(ctx context.Context, id string, u KeyUpdate) (Key, error) {
	var (
		sets []string
		args = []any{id}
	)
	set := func(col string, v any) {
		args = append(args, v)
		sets = append(sets, fmt.Sprintf("%s = $%d", col, len(args)))
	}
	if u.Models != nil {
		mj, err := modelsJSON(*u.Models)
		if err != nil {
			return Key{}, err
		}
		set("models", mj)
	}
	if u.Limits != nil {
		if err := validateLimits(*u.Limits); err != nil {
			return Key{}, err
		}
		set("rpm", u.Limits.RPM)
		set("tpm", u.Limits.TPM)
		set("max_concurrency", u.Limits.MaxConcurrency)
		set("batch_rpm", u.Limits.BatchRPM)
		set("batch_tpm", u.Limits.BatchTPM)
	}
	if u.Priority != nil {
		if err := billing.CheckPriority(*u.Priority); err != nil {
			return Key{}, err
		}
		set("priority", *u.Priority)
	}
	if len(sets) > 0 {
		n, err := s.c.exec(ctx, `UPDATE api_keys SET `+strings.Join(sets, ", ")+` WHERE id = $1`, args...)
		if err != nil {
			return Key{}, fmt.Errorf("update key: %w", err)
		}
		if n == 0 {
			return Key{}, fmt.Errorf("key %q: %w", id, ErrNotFound)
		}
	}
	return s.GetKey(ctx, id)
}

func (s *sqlStore) Ping(ctx context.Context) error { return s.c.ping(ctx) }

func (s *sqlStore) Close() error { s.c.close(); return nil }

// fromMicros reads a nullable unix-microsecond column.
func fromMicros(v *int64) *time.Time {
	if v == nil {
		return nil
	}
	t := time.UnixMicro(*v).UTC()
	return &t
}

// micros truncates t to what the database keeps, so values round-trip exactly.
func micros(t time.Time) time.Time { return time.UnixMicro(t.UnixMicro()).UTC() }
