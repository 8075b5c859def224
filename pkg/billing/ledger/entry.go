package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Kind classifies an entry. Money moves only through entries; the signs are
// fixed per kind so that a balance can be explained from its history.
type Kind string

// Entry kinds.
const (
	KindCredit      Kind = "credit"      // payment received: amount > 0
	KindDebit       Kind = "debit"       // usage charged: amount <= 0
	KindReservation Kind = "reservation" // reserved in ledger_holds, never an entry (see docs/billing.md)
	KindRelease     Kind = "release"     // a request settled with nothing used: amount = 0
	KindAdjustment  Kind = "adjustment"  // operator correction or refund: any sign
)

// Entry is one row of the append-only ledger. Key is unique: applying an
// entry whose key exists changes nothing, which makes every write path
// (batch writer, spool replay, webhook redelivery) idempotent.
type Entry struct {
	Seq      int64  `json:"seq,omitempty"` // assigned by the store
	Key      string `json:"key"`
	TenantID string `json:"tenant"`
	Kind     Kind   `json:"kind"`
	Amount   Micros `json:"amount"`
	Model    string `json:"model,omitempty"`
	// KeyID is the public id of the API key whose request the entry
	// charges (debits, releases); empty for credits and adjustments.
	KeyID string `json:"keyId,omitempty"`
	// EndUser is the OpenAI `user` field of the request (the client's own
	// end user, at most MaxEndUser bytes); empty when it sent none.
	EndUser string `json:"endUser,omitempty"`
	// BatchID is the batch (Batches API) whose line the entry charges;
	// empty for interactive requests and for credits.
	BatchID          string `json:"batchId,omitempty"`
	PromptTokens     int64  `json:"promptTokens,omitempty"`
	CompletionTokens int64  `json:"completionTokens,omitempty"`
	// CachedPromptTokens is the part of PromptTokens the backend served
	// from its prefix cache, charged at the cachedInput price.
	CachedPromptTokens int64     `json:"cachedPromptTokens,omitempty"`
	Reason             string    `json:"reason,omitempty"`
	Time               time.Time `json:"time"`
}

// MaxEndUser bounds Entry.EndUser (and the gateway's `user` field), so a
// client cannot grow every ledger row by an arbitrary string.
const MaxEndUser = 256

// ErrInvalidEntry reports an entry that breaks the ledger's rules.
var ErrInvalidEntry = errors.New("invalid ledger entry")

// Validate checks the key, tenant and the sign rule of the kind.
func (e Entry) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidEntry, e.Key, fmt.Sprintf(format, args...))
	}
	switch {
	case e.Key == "":
		return bad("empty idempotency key")
	case len(e.Key) > 256:
		return bad("idempotency key longer than 256 bytes")
	case e.TenantID == "":
		return bad("empty tenant")
	case e.PromptTokens < 0 || e.CompletionTokens < 0 || e.CachedPromptTokens < 0:
		return bad("negative token count")
	case e.CachedPromptTokens > e.PromptTokens:
		return bad("more cached prompt tokens (%d) than prompt tokens (%d)", e.CachedPromptTokens, e.PromptTokens)
	case len(e.EndUser) > MaxEndUser:
		return bad("end user longer than %d bytes", MaxEndUser)
	case len(e.BatchID) > 256:
		return bad("batch id longer than 256 bytes")
	case e.Time.IsZero():
		return bad("no time")
	}
	switch e.Kind {
	case KindCredit:
		if e.Amount <= 0 {
			return bad("a credit must be positive, got %s", e.Amount)
		}
	case KindDebit:
		if e.Amount > 0 {
			return bad("a debit must not be positive, got %s", e.Amount)
		}
	case KindRelease:
		if e.Amount != 0 {
			return bad("a release moves no money, got %s", e.Amount)
		}
	case KindAdjustment:
		if e.Amount == 0 {
			return bad("an adjustment of zero")
		}
	case KindReservation:
		return bad("reservations are holds, not entries")
	default:
		return bad("unknown kind %q", e.Kind)
	}
	return nil
}

// Account is a tenant's balance: the sum of its entries, and what open holds
// reserve of it.
type Account struct {
	TenantID string `json:"tenant"`
	Balance  Micros `json:"balance"`
	Reserved Micros `json:"reserved"`
}

// Available is what new reservations may use before the overdraft.
func (a Account) Available() Micros { return a.Balance - a.Reserved }

// HoldRequest reserves Amount of a tenant's balance under Key.
type HoldRequest struct {
	Key      string
	TenantID string
	// KeyID is the API key whose request reserves: its budgets apply too.
	KeyID     string
	Amount    Micros
	Overdraft Micros // how far below zero Available may go
	// Time is when the hold is made; budget periods are cut at it.
	Time time.Time
}

// OpenHold is a reservation not yet settled or released.
type OpenHold struct {
	Key      string    `json:"key"`
	TenantID string    `json:"tenant"`
	Amount   Micros    `json:"amount"`
	Created  time.Time `json:"created"`
}

// Filter selects entries; zero fields select everything, oldest first.
type Filter struct {
	TenantID string
	Since    time.Time
	// Until, if set, drops entries created after it (Since and Until are
	// both inclusive, as in SpendWindow).
	Until time.Time
	// BeforeSeq, if > 0, keeps entries whose Seq is below it: the cursor of
	// the next page of a NewestFirst listing.
	BeforeSeq int64
	// NewestFirst orders by Seq descending, so that Limit keeps the latest.
	NewestFirst bool
	Limit       int
}

// Drift is a tenant whose stored balance or reservation disagrees with what
// its entries and holds add up to.
type Drift struct {
	TenantID string `json:"tenant"`
	Balance  Micros `json:"balance"`
	EntrySum Micros `json:"entrySum"`
	Reserved Micros `json:"reserved"`
	HoldSum  Micros `json:"holdSum"`
}

// Report is the outcome of Verify.
type Report struct {
	Tenants  int     `json:"tenants"`
	Entries  int64   `json:"entries"`
	Holds    int64   `json:"holds"`
	Drifts   []Drift `json:"drifts,omitempty"`
	BadSigns int64   `json:"badSigns"` // entries breaking their kind's sign rule
}

// OK reports whether the ledger is consistent.
func (r Report) OK() bool { return len(r.Drifts) == 0 && r.BadSigns == 0 }

// Store is the ledger's database. Implementations: PostgreSQL and SQLite,
// both checked by ledgertest.Run.
type Store interface {
	// Reserve records a hold and adds it to the account's reserved amount,
	// atomically, if Balance-Reserved-Amount >= -Overdraft; otherwise it
	// returns an error wrapping billing.ErrInsufficientQuota. A hold that
	// would take a budget of the tenant or key past its amount is refused
	// with a *billing.BudgetError.
	Reserve(ctx context.Context, h HoldRequest) error
	// Apply writes entries in one transaction: each new key inserts its
	// entry and moves the balance; a key already present changes nothing.
	// The hold with the same key, if any, is released in that transaction.
	// It returns how many entries were new.
	Apply(ctx context.Context, entries []Entry) (int, error)
	// ExpireHolds releases holds created before t (a crashed gateway's
	// whose spool was lost), and holds whose key already has an entry (a
	// reservation that committed after the release meant for it).
	ExpireHolds(ctx context.Context, before time.Time) (int, error)
	// Holds lists the open holds created before t, oldest first.
	Holds(ctx context.Context, before time.Time) ([]OpenHold, error)
	Account(ctx context.Context, tenantID string) (Account, error)
	Accounts(ctx context.Context) ([]Account, error)
	Entries(ctx context.Context, f Filter) ([]Entry, error)
	// Spend sums each tenant's debits and releases over a window.
	Spend(ctx context.Context, w SpendWindow) ([]Spend, error)
	// Verify recomputes every balance and reservation from entries and holds.
	Verify(ctx context.Context) (Report, error)
	Ping(ctx context.Context) error
	Close() error
	VoucherStore // vouchers.go
	BudgetStore  // budget.go
}
