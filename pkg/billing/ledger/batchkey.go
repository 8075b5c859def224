package ledger

import "strings"

// batchKeySuffix ends the key of a batch line's charge. An interactive
// request's key ends in a random suffix instead (chargeKey), so a client's
// X-Request-Id can never make a key of this form.
const batchKeySuffix = ":batch"

// BatchLineKey is the idempotency key of the charge of one run of a batch
// line, whose request id the batch worker makes (never the client). It has
// no random part: a line run again under the same request id after a crash
// (its first run charged, its answer not yet stored) settles under the same
// key, and the ledger keeps only the first charge.
func BatchLineKey(requestID string) string { return "req:" + requestID + batchKeySuffix }

// BatchLineRequestID is the request id in a key made by BatchLineKey; ok is
// false for any other key.
func BatchLineRequestID(key string) (requestID string, ok bool) {
	rest, ok := strings.CutPrefix(key, "req:")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, batchKeySuffix)
}
