// Package ledger is llmctl's money book: append-only entries in integer
// micro-units, balances kept in the same transaction as the entries they
// sum, reservations (holds) for a request's maximum cost, and the write path
// that makes settlement independent of the database: every settled entry is
// first appended to a local fsync'd spool (pkg/billing/ledger/spool), then
// written to the database in batches, idempotently by key, and replayed from
// the spool after a crash or an outage.
//
// Two stores implement Store — PostgreSQL (pgx pool) and SQLite (pure Go) —
// and pass one conformance suite (ledgertest). Ledger implements the
// gateway's serve.Reserver.
package ledger
