// Package batch serves the OpenAI Files and Batches API and runs batches
// through the gateway's own request path (docs: issue 24). Files, batches
// and every finished line live in the billing database (migration 00209),
// so a batch survives a restart and each line is recorded exactly once.
package batch

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is a file or batch that does not exist for this tenant.
var ErrNotFound = errors.New("not found")

// Status is a batch's state, as OpenAI names it.
type Status string

// The states of a batch.
const (
	StatusValidating Status = "validating"
	StatusFailed     Status = "failed"
	StatusInProgress Status = "in_progress"
	StatusFinalizing Status = "finalizing"
	StatusCompleted  Status = "completed"
	StatusExpired    Status = "expired"
	StatusCancelling Status = "cancelling"
	StatusCancelled  Status = "cancelled"
)

// Terminal reports whether no more work is done on a batch in s.
func (s Status) Terminal() bool {
	switch s {
	case StatusFailed, StatusCompleted, StatusExpired, StatusCancelled:
		return true
	}
	return false
}

// File is one uploaded file; Content is only filled by FileContent.
type File struct {
	ID        string
	TenantID  string
	Purpose   string
	Filename  string
	Size      int64
	CreatedAt time.Time
	Content   []byte
}

// Batch is one batch. Times are zero until reached.
type Batch struct {
	ID       string
	TenantID string
	// Principal is the creating key's snapshot (JSON) the lines run as.
	Principal        string
	InputFileID      string
	Endpoint         string
	CompletionWindow string
	// Metadata is the client's JSON object, "" when none.
	Metadata string
	Status   Status
	// Errors is the JSON list of validation errors, "" when none.
	Errors                    string
	Total, Completed, Failed  int64
	OutputFileID, ErrorFileID string

	CreatedAt, ExpiresAt                           time.Time
	InProgressAt, FinalizingAt, CompletedAt        time.Time
	FailedAt, ExpiredAt, CancellingAt, CancelledAt time.Time
}

// Line is one finished line: its output or error line, ready for the file.
type Line struct {
	CustomID string
	LineNo   int64
	Failed   bool
	JSON     string
}

// FileQuery selects a page of a tenant's files.
type FileQuery struct {
	Purpose string // "" = every purpose
	After   string // a file id; "" = from the start
	Limit   int
	Asc     bool // oldest first; else newest first
}

// Store is what the API and the worker need from the database. Every
// read and write of a file or batch names the tenant, so one tenant never
// reaches another's (ErrNotFound); only the worker's methods are global.
type Store interface {
	CreateFile(ctx context.Context, f File) error
	// File is the file's metadata, without Content.
	File(ctx context.Context, tenantID, id string) (File, error)
	FileContent(ctx context.Context, tenantID, id string) (File, error)
	DeleteFile(ctx context.Context, tenantID, id string) error
	// ListFiles is the tenant's files (without Content) of purpose ("" =
	// all), in created order (oldest first if asc, else newest first),
	// after the file with id after ("" = from the start); more says whether
	// any follow. An after that is not the tenant's file is ErrNotFound.
	ListFiles(ctx context.Context, tenantID string, q FileQuery) (fs []File, more bool, err error)

	CreateBatch(ctx context.Context, b Batch) error
	Batch(ctx context.Context, tenantID, id string) (Batch, error)
	// ListBatches is the tenant's batches, newest first, after the batch
	// with id after ("" = from the newest); more says whether any follow.
	ListBatches(ctx context.Context, tenantID, after string, limit int) (bs []Batch, more bool, err error)
	// UpdateBatch writes b's state, counts, file ids and times if the
	// stored batch is still in status from; ok is false if it was not.
	UpdateBatch(ctx context.Context, b Batch, from Status) (ok bool, err error)

	// Unfinished is every batch that is not terminal, oldest first, for
	// the worker (after a restart, too).
	Unfinished(ctx context.Context) ([]Batch, error)
	// RecordLine stores a finished line once per (batch, custom id) and
	// counts it on the batch; recorded is false if it was already there.
	RecordLine(ctx context.Context, batchID string, l Line) (recorded bool, err error)
	// Lines is every finished line of the batch, in input order.
	Lines(ctx context.Context, batchID string) ([]Line, error)

	// Claim takes the lease on a batch for owner until now+ttl: a
	// renewal if owner holds it, else only an unfinished batch whose
	// lease ended before now; ok is false if another owner holds it or
	// the batch is finished and not owner's (lease.go).
	Claim(ctx context.Context, batchID, owner string, now time.Time, ttl time.Duration) (ok bool, err error)
	// Release ends owner's lease on the batch at once (a graceful stop),
	// so another replica need not wait out the TTL; another's lease is kept.
	Release(ctx context.Context, batchID, owner string) error
	// LineCharges is what the ledger holds of the batch's lines, by line
	// number: the runs charged, still held, or released (charges.go).
	LineCharges(ctx context.Context, batchID string) (map[int64]LineCharge, error)

	Close() error
}
