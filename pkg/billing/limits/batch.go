package limits

import (
	"context"

	"github.com/llmctl/llmctl/pkg/billing"
)

// AdmitBatch admits one line of a batch (the Batches API) against the
// batch-only limits: its own counters per key and per tenant, apart from
// interactive traffic's, so that a batch never uses up the RPM, TPM or
// concurrency its key's interactive requests are limited by, however many
// lines it has. The limits are the key's and tenant's stored batch RPM and
// TPM (billing.Limits.BatchRPM/BatchTPM), each set field overriding the
// config's (Config.Batch), as stored interactive limits override theirs.
// What bounds a batch otherwise is the tenant's balance and budgets (the
// ledger) and the batch share of backend slots (the admission queue). With
// no batch limit configured or stored it counts nothing and costs no store
// round trip.
func (l *Limiter) AdmitBatch(ctx context.Context, p billing.Principal, model string, maxTokens int64) (billing.Ticket, error) {
	bs, owner := l.cachedBuckets(bucketsKey{key: p.KeyID, tenant: p.TenantID, batch: true}, p, "")
	return l.admitIn(ctx, bs, owner, maxTokens)
}

// batchBuckets lists what a batch line of p is checked against.
func (l *Limiter) batchBuckets(p billing.Principal) []bucket {
	var bs []bucket
	if p.KeyID != "" {
		bs = l.appendBucket(bs, p, "key", "key "+p.KeyID+" (batch lines)", "k:"+p.KeyID+":batch",
			override(batchPart(p.KeyLimits), l.cfg.Batch.Key))
	}
	if p.TenantID != "" {
		bs = l.appendBucket(bs, p, "tenant", "tenant "+p.TenantID+" (batch lines)", "t:batch",
			override(batchPart(p.TenantLimits), l.cfg.Batch.Tenant))
	}
	return bs
}

// batchPart is the batch-only part of stored limits, as the limits of a
// batch bucket. Batch concurrency is not stored: the config's applies.
func batchPart(stored billing.Limits) billing.Limits {
	return billing.Limits{RPM: stored.BatchRPM, TPM: stored.BatchTPM}
}
