package limits

import (
	"context"

	"github.com/llmctl/llmctl/pkg/billing"
)

// AdmitBatch admits one line of a batch (the Batches API) against the
// batch-only limits (Config.Batch): its own counters per key and per
// tenant, apart from interactive traffic's, so that a batch never uses up
// the RPM, TPM or concurrency its key's interactive requests are limited
// by, however many lines it has. What bounds a batch otherwise is the
// tenant's balance and budgets (the ledger) and the batch share of backend
// slots (the admission queue). With no batch limit configured it counts
// nothing and costs no store round trip.
func (l *Limiter) AdmitBatch(ctx context.Context, p billing.Principal, model string, maxTokens int64) (billing.Ticket, error) {
	var bs []bucket
	if p.KeyID != "" {
		bs = l.appendBucket(bs, p, "key", "key "+p.KeyID+" (batch lines)", "k:"+p.KeyID+":batch", l.cfg.Batch.Key)
	}
	if p.TenantID != "" {
		bs = l.appendBucket(bs, p, "tenant", "tenant "+p.TenantID+" (batch lines)", "t:batch", l.cfg.Batch.Tenant)
	}
	return l.admitIn(ctx, bs, ownerOf(p), maxTokens)
}
