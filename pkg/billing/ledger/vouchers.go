package ledger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Vouchers are prepaid codes that credit the tenant that redeems them. Only
// a hash of each code is stored: the code is shown once, when created.

// VoucherStore is the ledger's voucher table; both dialects implement it,
// checked by ledgertest.Run.
type VoucherStore interface {
	// CreateVouchers stores new vouchers (ID, CodeHash, Amount, TenantID,
	// Created, Expires), all or none.
	CreateVouchers(ctx context.Context, vs []Voucher) error
	// Vouchers lists vouchers, newest first.
	Vouchers(ctx context.Context, f VoucherFilter) ([]Voucher, error)
	// RevokeVoucher marks an unredeemed voucher unusable. It returns
	// ErrVoucherNotFound for an unknown id and ErrVoucherSpent for one
	// already redeemed or revoked.
	RevokeVoucher(ctx context.Context, id string, at time.Time) (Voucher, error)
	// RedeemVoucher, in one transaction, marks the voucher with this code
	// hash redeemed by the tenant, if it is unused, unrevoked, unexpired at
	// r.Time and not restricted to another tenant, and credits its amount
	// (entry key "voucher:"+id, as Apply writes it). Anything else is
	// ErrInvalidVoucher, whichever the reason. Exactly once under any
	// concurrency, across processes sharing the database.
	RedeemVoucher(ctx context.Context, r RedeemRequest) (Redemption, error)
}

// Voucher is one stored voucher; its code is not among its fields.
type Voucher struct {
	ID       string     `json:"id"`
	CodeHash string     `json:"-"` // VoucherCodeHash of the code
	Amount   Micros     `json:"amount"`
	TenantID string     `json:"tenant,omitempty"` // only this tenant may redeem it; "" = any
	Created  time.Time  `json:"created"`
	Expires  *time.Time `json:"expires,omitempty"`
	Redeemed *time.Time `json:"redeemed,omitempty"`
	// RedeemedBy is the tenant id that redeemed it.
	RedeemedBy string     `json:"redeemedBy,omitempty"`
	Revoked    *time.Time `json:"revoked,omitempty"`
}

// State is "redeemed", "revoked", "expired" (at now) or "active".
func (v Voucher) State(now time.Time) string {
	switch {
	case v.Redeemed != nil:
		return "redeemed"
	case v.Revoked != nil:
		return "revoked"
	case v.Expires != nil && !now.Before(*v.Expires):
		return "expired"
	}
	return "active"
}

// VoucherFilter selects vouchers; zero fields select all.
type VoucherFilter struct {
	Limit int
}

// RedeemRequest redeems the voucher whose code hashes to CodeHash for
// TenantID at Time.
type RedeemRequest struct {
	CodeHash string
	TenantID string
	Time     time.Time
}

// Redemption is a redeemed voucher and the tenant's account after it.
type Redemption struct {
	Voucher Voucher
	Account Account
}

// Voucher errors.
var (
	// ErrInvalidVoucher is every refused redemption: unknown, used,
	// revoked, expired or another tenant's, deliberately one error so the
	// answer tells a guesser nothing.
	ErrInvalidVoucher  = errors.New("invalid voucher")
	ErrVoucherNotFound = errors.New("no such voucher")
	ErrVoucherSpent    = errors.New("voucher already redeemed or revoked")
)

// VoucherPrefix starts every code, so a code is recognisable in a support
// ticket (and by secret scanners).
const VoucherPrefix = "LLMV"

// voucherBytes is a code's randomness: 160 bits, 32 base32 characters.
const voucherBytes = 20

var voucherEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewVoucherCode returns a fresh code, "LLMV-XXXX-XXXX-…" (8 groups of 4
// base32 characters), and its hash.
func NewVoucherCode() (code, hash string, err error) {
	b := make([]byte, voucherBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate voucher code: %w", err)
	}
	s := voucherEncoding.EncodeToString(b)
	var sb strings.Builder
	sb.WriteString(VoucherPrefix)
	for i := 0; i < len(s); i += 4 {
		sb.WriteByte('-')
		sb.WriteString(s[i : i+4])
	}
	code = sb.String()
	return code, VoucherCodeHash(code), nil
}

// VoucherCodeHash is the stored form of a code as a user may type it: case,
// spaces, dashes and the prefix do not matter.
func VoucherCodeHash(code string) string {
	c := strings.ToUpper(code)
	c = strings.NewReplacer("-", "", " ", "", "\t", "", "\n", "", "\r", "").Replace(c)
	c = strings.TrimPrefix(c, VoucherPrefix)
	h := sha256.Sum256([]byte(c))
	return hex.EncodeToString(h[:])
}

// NewVoucherID returns a voucher's public id, "vch_…".
func NewVoucherID() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate voucher id: %w", err)
	}
	return "vch_" + strings.ToLower(voucherEncoding.EncodeToString(b)), nil
}

// redemptionEntry is the credit a redemption writes: keyed by the voucher,
// so even a second transaction that got past the voucher's guard could not
// credit it twice.
func redemptionEntry(v Voucher, tenantID string, at time.Time) Entry {
	return Entry{Key: "voucher:" + v.ID, TenantID: tenantID, Kind: KindCredit, Amount: v.Amount,
		Reason: "voucher " + v.ID, Time: at.UTC()}
}

// voucherColumns in the order scanVoucher reads them.
const voucherColumns = `id, code_hash, amount, tenant_id, created_at, expires_at, redeemed_at, redeemed_by, revoked_at`

func scanVoucher(r interface{ Scan(...any) error }) (Voucher, error) {
	var (
		v                          Voucher
		created                    int64
		expires, redeemed, revoked *int64
	)
	if err := r.Scan(&v.ID, &v.CodeHash, &v.Amount, &v.TenantID, &created, &expires, &redeemed, &v.RedeemedBy, &revoked); err != nil {
		return Voucher{}, err
	}
	v.Created = time.UnixMicro(created).UTC()
	v.Expires, v.Redeemed, v.Revoked = microsPtr(expires), microsPtr(redeemed), microsPtr(revoked)
	return v, nil
}

func microsPtr(p *int64) *time.Time {
	if p == nil {
		return nil
	}
	t := time.UnixMicro(*p).UTC()
	return &t
}

func timePtrMicros(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	m := t.UnixMicro()
	return &m
}

func validVoucher(v Voucher) error {
	if v.ID == "" || len(v.CodeHash) != 2*sha256.Size || v.Amount <= 0 || v.Created.IsZero() {
		return fmt.Errorf("ledger: invalid voucher %q: needs an id, a code hash, a positive amount and a creation time", v.ID)
	}
	return nil
}

// Voucher SQL shared by both dialects; p(i) is the i-th placeholder.
func voucherSQL(p func(i int) string) (insert, list, revoke, get, redeem string) {
	insert = `INSERT INTO vouchers (id, code_hash, amount, tenant_id, created_at, expires_at) VALUES (` +
		p(1) + `, ` + p(2) + `, ` + p(3) + `, ` + p(4) + `, ` + p(5) + `, ` + p(6) + `)`
	list = `SELECT ` + voucherColumns + ` FROM vouchers ORDER BY created_at DESC, id LIMIT ` + p(1)
	revoke = `UPDATE vouchers SET revoked_at = ` + p(2) + ` WHERE id = ` + p(1) +
		` AND redeemed_at IS NULL AND revoked_at IS NULL RETURNING ` + voucherColumns
	get = `SELECT ` + voucherColumns + ` FROM vouchers WHERE id = ` + p(1)
	// The guard that makes a redemption exactly once: on PostgreSQL a
	// concurrent UPDATE of the same row waits for the first to commit and
	// then re-checks redeemed_at; SQLite runs one writer at a time.
	redeem = `UPDATE vouchers SET redeemed_at = ` + p(3) + `, redeemed_by = ` + p(2) +
		` WHERE code_hash = ` + p(1) + ` AND redeemed_at IS NULL AND revoked_at IS NULL
        AND (expires_at IS NULL OR expires_at > ` + p(3) + `)
        AND (tenant_id = '' OR tenant_id = ` + p(2) + `)
        RETURNING ` + voucherColumns
	return
}

// redeemIn is a redemption's steps inside the caller's transaction: the
// guarded update, the credit through apply (Apply's own code), and the new
// account. The caller commits on nil.
func redeemIn(r RedeemRequest, redeem func() (Voucher, error),
	apply func([]Entry) (int, error), account func() (Account, error)) (Redemption, error) {
	v, err := redeem()
	if err != nil {
		return Redemption{}, err
	}
	n, err := apply([]Entry{redemptionEntry(v, r.TenantID, r.Time)})
	if err != nil {
		return Redemption{}, err
	}
	if n != 1 {
		return Redemption{}, fmt.Errorf("voucher %s: its credit entry already exists", v.ID)
	}
	a, err := account()
	if err != nil {
		return Redemption{}, err
	}
	return Redemption{Voucher: v, Account: a}, nil
}

func checkRedeem(r RedeemRequest) error {
	if r.TenantID == "" || r.Time.IsZero() {
		return errors.New("ledger: redeem: a tenant and a time are required")
	}
	return nil
}

// redeemError is what RedeemVoucher returns for its transaction's err.
func redeemError(err error) error {
	if errors.Is(err, ErrInvalidVoucher) {
		return ErrInvalidVoucher
	}
	return fmt.Errorf("ledger: redeem voucher: %w", err)
}

// notRevocable explains a revoke that changed no row: getErr is the lookup
// of the voucher by id, noRows its dialect's "no row".
func notRevocable(id string, getErr, noRows error) error {
	switch {
	case errors.Is(getErr, noRows):
		return fmt.Errorf("%w: %s", ErrVoucherNotFound, id)
	case getErr == nil:
		return fmt.Errorf("%w: %s", ErrVoucherSpent, id)
	}
	return getErr
}

// MaxVouchersPerIssue bounds one IssueVouchers call (and its one transaction).
const MaxVouchersPerIssue = 1000

// IssueRequest asks for Count vouchers of Amount each.
type IssueRequest struct {
	Amount   Micros
	Count    int
	TenantID string        // "" = any tenant may redeem them
	Expires  time.Duration // after Now; 0 = never
	Now      time.Time
}

// Issued is a created voucher and its code, which exists nowhere else.
type Issued struct {
	Voucher
	Code string `json:"code"`
}

// IssueVouchers creates r.Count vouchers in one transaction and returns
// their codes: the only time the codes are known.
func IssueVouchers(ctx context.Context, s interface {
	CreateVouchers(ctx context.Context, vs []Voucher) error
}, r IssueRequest) ([]Issued, error) {
	if r.Amount <= 0 {
		return nil, errors.New("a voucher's amount must be positive")
	}
	if r.Count < 1 || r.Count > MaxVouchersPerIssue {
		return nil, fmt.Errorf("count must be 1 to %d, got %d", MaxVouchersPerIssue, r.Count)
	}
	if r.Expires < 0 {
		return nil, errors.New("expiry must not be negative")
	}
	now := r.Now.UTC().Truncate(time.Microsecond) // as stored
	var exp *time.Time
	if r.Expires > 0 {
		e := now.Add(r.Expires)
		exp = &e
	}
	out := make([]Issued, r.Count)
	vs := make([]Voucher, r.Count)
	for i := range out {
		code, hash, err := NewVoucherCode()
		if err != nil {
			return nil, err
		}
		id, err := NewVoucherID()
		if err != nil {
			return nil, err
		}
		vs[i] = Voucher{ID: id, CodeHash: hash, Amount: r.Amount, TenantID: r.TenantID, Created: now, Expires: exp}
		out[i] = Issued{Voucher: vs[i], Code: code}
	}
	if err := s.CreateVouchers(ctx, vs); err != nil {
		return nil, err
	}
	return out, nil
}
