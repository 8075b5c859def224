package limits

import (
	"context"
	"time"
)

// bucket is one set of counters a request is checked against: a key, a
// tenant, or a key/tenant restricted to one model. Limits of 0 are not
// checked (and cost nothing in the store).
type bucket struct {
	scope   string // "key" or "tenant": the metric label
	id      string // human-readable owner, for messages
	counter string // store key of the RPM/TPM counters
	slots   string // store key of the concurrency slots
	rpm     int64
	tpm     int64
	conc    int64
	args    [3]any // rpm, tpm, conc as the Redis script's arguments, boxed once
}

// admitRequest is one atomic decision over all of a request's buckets.
type admitRequest struct {
	owner   string // the API key (else tenant) the request came with: see settler
	buckets []bucket
	ticket  string // concurrency slot member
	tokens  int64  // TPM reservation
	window  time.Duration
	lease   time.Duration
}

// Which limit refused a request.
const (
	dimNone = iota
	dimRequests
	dimTokens
	dimConcurrency
)

// admitResult is what the store saw: the window the decision was made in,
// each bucket's counters (after the increment when admitted) and, when
// refused, which bucket and which limit refused.
type admitResult struct {
	admitted bool
	wid      int64 // window id
	elapsed  int64 // ms into the window
	denied   int   // index into buckets when refused
	dim      int   // dimRequests, dimTokens or dimConcurrency
	state    []bucketState

	mirrorWid int64 // set by Limiter.admit: the fallback's window counting a Redis admission
}

type bucketState struct {
	counters
	inUse int64 // concurrency slots held
}

// settleRequest corrects a reservation by delta tokens in the window it was
// made in, and frees the ticket's concurrency slots.
type settleRequest struct {
	owner   string
	buckets []bucket
	ticket  string
	wid     int64
	delta   int64
}

// slotRef names one held concurrency slot, for lease renewal.
type slotRef struct{ key, ticket string }

// store is the atomic part of the limiter: the in-process map or the Redis
// script. Each method is one atomic step (one round trip for Redis).
type store interface {
	admit(ctx context.Context, r admitRequest) (admitResult, error)
	settle(ctx context.Context, r settleRequest) error
	renew(ctx context.Context, slots []slotRef, lease time.Duration) error
}
