package batch

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// Claim is one conditional UPDATE: the row changes only if the lease is
// already owner's (a renewal, whatever the batch's status: the owner may
// have just finished it) or free (ended before now) on an unfinished
// batch, so of two replicas racing for a batch exactly one gets it, on
// PostgreSQL and SQLite alike.
func (s *sqlStore) Claim(ctx context.Context, batchID, owner string, now time.Time, ttl time.Duration) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE batches SET lease_owner = $1, lease_until = $2
		WHERE id = $3 AND (lease_owner = $1 OR (lease_until < $8 AND status IN ($4, $5, $6, $7)))`),
		owner, now.Add(ttl).UnixMilli(), batchID, string(StatusValidating), string(StatusInProgress), string(StatusFinalizing),
		string(StatusCancelling), now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("claim batch %s: %w", batchID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim batch %s: %w", batchID, err)
	}
	return n == 1, nil
}

func (s *sqlStore) Release(ctx context.Context, batchID, owner string) error {
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE batches SET lease_owner = '', lease_until = 0 WHERE id = $1 AND lease_owner = $2`),
		batchID, owner); err != nil {
		return fmt.Errorf("release batch %s: %w", batchID, err)
	}
	return nil
}

// likePrefix is a LIKE pattern matching the strings that start with p.
func likePrefix(p string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p) + "%"
}

// LineCharges reads the ledger's entries and open holds whose key is a run
// of one of the batch's lines (ledger.BatchLineKey of requestID's form).
func (s *sqlStore) LineCharges(ctx context.Context, batchID string) (map[int64]LineCharge, error) {
	pat := likePrefix("req:" + batchID + "-")
	out := map[int64]LineCharge{}
	read := func(query string, each func(rid string, lineNo int64, kind string)) error {
		rows, err := s.db.QueryContext(ctx, s.q(query), pat)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var key, kind string
			if err := rows.Scan(&key, &kind); err != nil {
				return err
			}
			rid, ok := ledger.BatchLineRequestID(key)
			if !ok {
				continue
			}
			if lineNo, ok := lineOfRequest(batchID, rid); ok {
				each(rid, lineNo, kind)
			}
		}
		return rows.Err()
	}
	err := read(`SELECT idem_key, kind FROM ledger_entries WHERE idem_key LIKE $1 ESCAPE '\'`, func(rid string, n int64, kind string) {
		c := out[n]
		c.Runs++
		if kind == string(ledger.KindDebit) {
			c.Charged = rid
		}
		out[n] = c
	})
	if err == nil {
		err = read(`SELECT hold_key, '' FROM ledger_holds WHERE hold_key LIKE $1 ESCAPE '\'`, func(_ string, n int64, _ string) {
			c := out[n]
			c.Held = true
			out[n] = c
		})
	}
	if err != nil {
		return nil, fmt.Errorf("read the ledger's charges of batch %s: %w", batchID, err)
	}
	return out, nil
}

// lineOfRequest is the line number in a request id made by runID.
func lineOfRequest(batchID, rid string) (int64, bool) {
	rest, ok := strings.CutPrefix(rid, batchID+"-")
	if !ok {
		return 0, false
	}
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		rest = rest[:i]
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil && n >= 0
}
