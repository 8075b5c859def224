package ledger_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/cputime"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// BenchmarkSQLiteReserveSettle is one request's storage work on the
// single-box ledger: a hold (Store.Reserve) and its settlement as a debit
// (Store.Apply of one entry), serially, as a plain b.N loop for ns/op, B/op
// and allocs/op under benchstat, with the process's CPU per op beside them
// (Apply commits with an fsync, so ns/op is mostly the disk's wait).
//
//	go test -run '^$' -bench SQLiteReserveSettle -benchmem -count 6 ./pkg/billing/ledger
func BenchmarkSQLiteReserveSettle(b *testing.B) {
	ctx := context.Background()
	s := open(b, sqliteDSN(b))
	defer s.Close()
	fund(b, s, "t", 1_000_000*ledger.Unit)
	b.ReportAllocs()
	cpu0 := cputime.Process()
	i := 0
	for b.Loop() {
		i++
		key := "h" + strconv.Itoa(i)
		now := time.Now()
		if err := s.Reserve(ctx, ledger.HoldRequest{Key: key, TenantID: "t", KeyID: "k", Amount: 100, Time: now}); err != nil {
			b.Fatal(err)
		}
		e := ledger.Entry{Key: key, TenantID: "t", KeyID: "k", Kind: ledger.KindDebit, Amount: -30, Model: "m",
			PromptTokens: 10, CompletionTokens: 10, Time: now}
		if _, err := s.Apply(ctx, []ledger.Entry{e}); err != nil {
			b.Fatal(err)
		}
	}
	// The process's CPU (user + system), which the disk's wait is not.
	cputime.Report(b, cpu0, i)
}
