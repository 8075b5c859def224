package batch

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/llmctl/llmctl/pkg/billing/store"
)

// sqlStore is the Store on PostgreSQL or SQLite through database/sql; the
// schema is the billing database's (migration 00209).
type sqlStore struct {
	db     *sql.DB
	sqlite bool
	shared bool // on a store.DB: not ours to close
	lines  *lineGroups
}

func newSQLStore(db *sql.DB, sqlite, shared bool) *sqlStore {
	s := &sqlStore{db: db, sqlite: sqlite, shared: shared}
	s.lines = &lineGroups{write: s.recordLines}
	return s
}

// Open connects to the billing database dsn (as store.Open takes it),
// applies pending migrations and returns the batch Store.
func Open(ctx context.Context, dsn string) (Store, error) {
	driver, target, err := store.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx, dsn); err != nil {
		return nil, err
	}
	if driver == store.Postgres {
		cfg, err := pgx.ParseConfig(target)
		if err != nil {
			return nil, fmt.Errorf("parse postgres DSN: %w", err)
		}
		db := stdlib.OpenDB(*cfg)
		// database/sql keeps 2 idle connections by default: the worker's
		// concurrent lines would each open a new PostgreSQL connection
		// for their write.
		db.SetMaxIdleConns(16)
		return newSQLStore(db, false, false), nil
	}
	db, err := store.OpenSQLite(target)
	if err != nil {
		return nil, err
	}
	return newSQLStore(db, true, false), nil
}

// OnDB is the batch Store on the process's one database handle (already
// migrated by store.OpenDB); its Close does nothing, d's owner closes d.
func OnDB(d *store.DB) Store {
	return newSQLStore(d.SQL(), d.Driver() == store.SQLite, true)
}

func (s *sqlStore) Close() error {
	if s.shared {
		return nil
	}
	return s.db.Close()
}

// q rewrites $N placeholders to SQLite's ?N.
func (s *sqlStore) q(query string) string {
	if !s.sqlite {
		return query
	}
	return strings.ReplaceAll(query, "$", "?")
}

func (s *sqlStore) CreateFile(ctx context.Context, f File) error {
	if f.Content == nil {
		f.Content = []byte{} // an empty file, not a missing one
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO batch_files (id, tenant_id, purpose, filename, content, size, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`), f.ID, f.TenantID, f.Purpose, f.Filename, f.Content, int64(len(f.Content)), f.CreatedAt.Unix())
	if err != nil {
		return fmt.Errorf("store file %s: %w", f.ID, err)
	}
	return nil
}

func (s *sqlStore) file(ctx context.Context, tenantID, id string, content bool) (File, error) {
	cols := fileCols
	if content {
		cols += ", content"
	}
	f := File{}
	var created int64
	dest := []any{&f.ID, &f.TenantID, &f.Purpose, &f.Filename, &f.Size, &created}
	if content {
		dest = append(dest, &f.Content)
	}
	err := s.db.QueryRowContext(ctx, s.q(`SELECT `+cols+` FROM batch_files WHERE tenant_id = $1 AND id = $2`), tenantID, id).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return File{}, ErrNotFound
	}
	if err != nil {
		return File{}, fmt.Errorf("read file %s: %w", id, err)
	}
	f.CreatedAt = time.Unix(created, 0).UTC()
	if content && f.Content == nil {
		f.Content = []byte{}
	}
	return f, nil
}

func (s *sqlStore) File(ctx context.Context, tenantID, id string) (File, error) {
	return s.file(ctx, tenantID, id, false)
}

func (s *sqlStore) FileContent(ctx context.Context, tenantID, id string) (File, error) {
	return s.file(ctx, tenantID, id, true)
}

const fileCols = "id, tenant_id, purpose, filename, size, created_at"

func (s *sqlStore) ListFiles(ctx context.Context, tenantID string, q FileQuery) ([]File, bool, error) {
	limit := max(q.Limit, 1)
	where, args := "tenant_id = $1", []any{tenantID}
	if q.Purpose != "" {
		args = append(args, q.Purpose)
		where += " AND purpose = $" + strconv.Itoa(len(args))
	}
	cmp, order := "<", "DESC"
	if q.Asc {
		cmp, order = ">", "ASC"
	}
	if q.After != "" {
		cur, err := s.File(ctx, tenantID, q.After)
		if err != nil {
			return nil, false, err
		}
		args = append(args, cur.CreatedAt.Unix(), cur.ID)
		c, i := strconv.Itoa(len(args)-1), strconv.Itoa(len(args))
		where += " AND (created_at " + cmp + " $" + c + " OR (created_at = $" + c + " AND id " + cmp + " $" + i + "))"
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+fileCols+` FROM batch_files WHERE `+where+
		` ORDER BY created_at `+order+`, id `+order+` LIMIT `+strconv.Itoa(limit+1)), args...)
	if err != nil {
		return nil, false, fmt.Errorf("list files: %w", err)
	}
	defer rows.Close()
	var fs []File
	for rows.Next() {
		var (
			f       File
			created int64
		)
		if err := rows.Scan(&f.ID, &f.TenantID, &f.Purpose, &f.Filename, &f.Size, &created); err != nil {
			return nil, false, fmt.Errorf("list files: %w", err)
		}
		f.CreatedAt = time.Unix(created, 0).UTC()
		fs = append(fs, f)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("list files: %w", err)
	}
	if len(fs) > limit {
		return fs[:limit], true, nil
	}
	return fs, false, nil
}

func (s *sqlStore) DeleteFile(ctx context.Context, tenantID, id string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM batch_files WHERE tenant_id = $1 AND id = $2`), tenantID, id)
	if err != nil {
		return fmt.Errorf("delete file %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete file %s: %w", id, err)
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}

const batchCols = `id, tenant_id, principal, input_file_id, endpoint, completion_window, metadata, status, errors,
	total, completed, failed, output_file_id, error_file_id, created_at, expires_at, in_progress_at, finalizing_at,
	completed_at, failed_at, expired_at, cancelling_at, cancelled_at`

// unix is t in unix seconds, NULL when zero.
func unix(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Unix()
}

func (s *sqlStore) CreateBatch(ctx context.Context, b Batch) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO batches (`+batchCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)`),
		b.ID, b.TenantID, b.Principal, b.InputFileID, b.Endpoint, b.CompletionWindow, b.Metadata, string(b.Status), b.Errors,
		b.Total, b.Completed, b.Failed, b.OutputFileID, b.ErrorFileID, b.CreatedAt.Unix(), b.ExpiresAt.Unix(),
		unix(b.InProgressAt), unix(b.FinalizingAt), unix(b.CompletedAt), unix(b.FailedAt), unix(b.ExpiredAt),
		unix(b.CancellingAt), unix(b.CancelledAt))
	if err != nil {
		return fmt.Errorf("store batch %s: %w", b.ID, err)
	}
	return nil
}

func scanBatch(sc interface{ Scan(...any) error }) (Batch, error) {
	var b Batch
	var status string
	var created, expires int64
	var times [7]sql.NullInt64
	err := sc.Scan(&b.ID, &b.TenantID, &b.Principal, &b.InputFileID, &b.Endpoint, &b.CompletionWindow, &b.Metadata, &status, &b.Errors,
		&b.Total, &b.Completed, &b.Failed, &b.OutputFileID, &b.ErrorFileID, &created, &expires,
		&times[0], &times[1], &times[2], &times[3], &times[4], &times[5], &times[6])
	if err != nil {
		return Batch{}, err
	}
	b.Status = Status(status)
	b.CreatedAt, b.ExpiresAt = time.Unix(created, 0).UTC(), time.Unix(expires, 0).UTC()
	for i, p := range []*time.Time{&b.InProgressAt, &b.FinalizingAt, &b.CompletedAt, &b.FailedAt, &b.ExpiredAt, &b.CancellingAt, &b.CancelledAt} {
		if times[i].Valid {
			*p = time.Unix(times[i].Int64, 0).UTC()
		}
	}
	return b, nil
}

func (s *sqlStore) Batch(ctx context.Context, tenantID, id string) (Batch, error) {
	b, err := scanBatch(s.db.QueryRowContext(ctx, s.q(`SELECT `+batchCols+` FROM batches WHERE tenant_id = $1 AND id = $2`), tenantID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Batch{}, ErrNotFound
	}
	if err != nil {
		return Batch{}, fmt.Errorf("read batch %s: %w", id, err)
	}
	return b, nil
}

func (s *sqlStore) batches(ctx context.Context, query string, args ...any) ([]Batch, error) {
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	defer rows.Close()
	var out []Batch
	for rows.Next() {
		b, err := scanBatch(rows)
		if err != nil {
			return nil, fmt.Errorf("list batches: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	return out, nil
}

func (s *sqlStore) ListBatches(ctx context.Context, tenantID, after string, limit int) ([]Batch, bool, error) {
	limit = max(limit, 1)
	var (
		bs  []Batch
		err error
	)
	if after == "" {
		bs, err = s.batches(ctx, `SELECT `+batchCols+` FROM batches WHERE tenant_id = $1
			ORDER BY created_at DESC, id DESC LIMIT `+strconv.Itoa(limit+1), tenantID)
	} else {
		cur, cerr := s.Batch(ctx, tenantID, after)
		if cerr != nil {
			return nil, false, cerr
		}
		bs, err = s.batches(ctx, `SELECT `+batchCols+` FROM batches WHERE tenant_id = $1
			AND (created_at < $2 OR (created_at = $2 AND id < $3))
			ORDER BY created_at DESC, id DESC LIMIT `+strconv.Itoa(limit+1), tenantID, cur.CreatedAt.Unix(), cur.ID)
	}
	if err != nil {
		return nil, false, err
	}
	if len(bs) > limit {
		return bs[:limit], true, nil
	}
	return bs, false, nil
}

func (s *sqlStore) UpdateBatch(ctx context.Context, b Batch, from Status) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE batches SET status = $1, errors = $2, total = $3, output_file_id = $4,
		error_file_id = $5, in_progress_at = $6, finalizing_at = $7, completed_at = $8, failed_at = $9, expired_at = $10,
		cancelling_at = $11, cancelled_at = $12 WHERE id = $13 AND status = $14`),
		string(b.Status), b.Errors, b.Total, b.OutputFileID, b.ErrorFileID, unix(b.InProgressAt), unix(b.FinalizingAt),
		unix(b.CompletedAt), unix(b.FailedAt), unix(b.ExpiredAt), unix(b.CancellingAt), unix(b.CancelledAt), b.ID, string(from))
	if err != nil {
		return false, fmt.Errorf("update batch %s: %w", b.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("update batch %s: %w", b.ID, err)
	}
	return n == 1, nil
}

func (s *sqlStore) Unfinished(ctx context.Context) ([]Batch, error) {
	return s.batches(ctx, `SELECT `+batchCols+` FROM batches WHERE status IN ($1, $2, $3, $4) ORDER BY created_at, id`,
		string(StatusValidating), string(StatusInProgress), string(StatusFinalizing), string(StatusCancelling))
}

// RecordLine joins the lines recorded at the same time in one
// transaction (linegroup.go).
func (s *sqlStore) RecordLine(ctx context.Context, batchID string, l Line) (bool, error) {
	return s.lines.record(ctx, batchID, l)
}

// recordLines is lineGroups.write: ws in one transaction, one INSERT for
// all and one counter UPDATE a batch, recorded[i] set for each line that
// was not already there.
func (s *sqlStore) recordLines(ctx context.Context, ws []*lineWrite, recorded []bool) error {
	what := "record line " + ws[0].line.CustomID
	if len(ws) > 1 {
		what = fmt.Sprintf("record %d lines", len(ws))
	}
	type key struct{ batchID, customID string }
	// A custom id twice in one group: the first write is tried, the
	// others are repeats (recorded false), as one after the other.
	first := make(map[key]int, len(ws))
	var values strings.Builder
	args := make([]any, 0, 5*len(ws))
	// Rows in key order: two replicas writing the same lines (a lease
	// hand-over) then never wait on each other's rows in opposite orders.
	order := make([]int, len(ws))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(ws[a].batchID, ws[b].batchID), cmp.Compare(ws[a].line.CustomID, ws[b].line.CustomID))
	})
	for _, i := range order {
		w := ws[i]
		k := key{w.batchID, w.line.CustomID}
		if _, dup := first[k]; dup {
			continue
		}
		first[k] = i
		if len(args) > 0 {
			values.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&values, "($%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5)
		args = append(args, w.batchID, w.line.CustomID, w.line.LineNo, failedInt(w.line.Failed), w.line.JSON)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, s.q(`INSERT INTO batch_lines (batch_id, custom_id, line_no, failed, line)
		VALUES `+values.String()+` ON CONFLICT (batch_id, custom_id) DO NOTHING RETURNING batch_id, custom_id`), args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	counts := map[string]*[2]int64{} // batch id → lines completed, failed
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.batchID, &k.customID); err != nil {
			rows.Close()
			return fmt.Errorf("%s: %w", what, err)
		}
		i, ok := first[k]
		if !ok {
			rows.Close()
			return fmt.Errorf("%s: the database returned a line not written: %s/%s", what, k.batchID, k.customID)
		}
		recorded[i] = true
		c := counts[k.batchID]
		if c == nil {
			c = new([2]int64)
			counts[k.batchID] = c
		}
		c[failedInt(ws[i].line.Failed)]++
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	// Batches in one order too.
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		c := counts[id]
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE batches SET completed = completed + $1, failed = failed + $2 WHERE id = $3`),
			c[0], c[1], id); err != nil {
			return fmt.Errorf("%s: count the lines of batch %s: %w", what, id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// failedInt is a line's failed column: 1 failed, 0 not.
func failedInt(failed bool) int64 {
	if failed {
		return 1
	}
	return 0
}

func (s *sqlStore) Lines(ctx context.Context, batchID string) ([]Line, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT custom_id, line_no, failed, line FROM batch_lines WHERE batch_id = $1 ORDER BY line_no`), batchID)
	if err != nil {
		return nil, fmt.Errorf("read lines: %w", err)
	}
	defer rows.Close()
	var out []Line
	for rows.Next() {
		var l Line
		var failed int64
		if err := rows.Scan(&l.CustomID, &l.LineNo, &failed, &l.JSON); err != nil {
			return nil, fmt.Errorf("read lines: %w", err)
		}
		l.Failed = failed != 0
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read lines: %w", err)
	}
	return out, nil
}
