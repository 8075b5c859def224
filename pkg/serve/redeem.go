package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve/admin"
)

// Redeemer redeems vouchers for POST /v1/me/redeem; a ledger.Store is one.
type Redeemer interface {
	RedeemVoucher(ctx context.Context, r ledger.RedeemRequest) (ledger.Redemption, error)
}

// DefaultRedeemPerMinute is how many redemption attempts a key may make per
// minute (Options.RedeemPerMinute).
const DefaultRedeemPerMinute = 10

// invalidVoucher is the one answer for every code that does not credit:
// unknown, used, expired, revoked or another tenant's alike, so that the
// answer says nothing about which codes exist.
func invalidVoucher() *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Code: "invalid_voucher", Param: "code",
		Message: "this voucher code cannot be redeemed: check it for typos; a code works once, until it expires, unless it was revoked or issued to another account"}
}

// redeemLimiter is a token bucket per API key, in this process: with N
// replicas a key gets up to N times the rate. That is enough, as codes
// carry 160 random bits: the limit stops a runaway client, not a guesser,
// whom the code space already stops.
type redeemLimiter struct {
	perMinute int
	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
}

// maxRedeemBuckets bounds the map: past it, the buckets start over (a
// key's budget is refilled early, which errs on the side of the caller).
const maxRedeemBuckets = 100_000

func newRedeemLimiter(perMinute int) *redeemLimiter {
	if perMinute == 0 {
		perMinute = DefaultRedeemPerMinute
	}
	return &redeemLimiter{perMinute: perMinute, buckets: map[string]*rate.Limiter{}}
}

// allow takes one attempt from key's bucket, or says how long until one is
// there. A negative perMinute allows everything.
func (l *redeemLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	if l.perMinute < 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxRedeemBuckets {
			clear(l.buckets)
		}
		b = rate.NewLimiter(rate.Limit(float64(l.perMinute)/60), l.perMinute)
		l.buckets[key] = b
	}
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// maxRedeemBody is plenty for {"code": "..."}.
const maxRedeemBody = 1 << 10

// redeem is POST /v1/me/redeem {"code": "LLMV-…"}: the voucher's amount is
// credited to the tenant of the calling key, exactly once per voucher.
func (g *Gateway) redeem(w http.ResponseWriter, r *http.Request, st *reqState) {
	p, aerr := g.authenticate(r, st)
	if aerr != nil {
		g.refuseUnread(w, st, aerr)
		return
	}
	if g.opts.Vouchers == nil {
		g.refuseUnread(w, st, &apiError{Status: http.StatusNotImplemented, Type: typeInvalidRequest, Code: "billing_disabled", Message: admin.BillingDisabled})
		return
	}
	now := time.Now()
	if ok, wait := g.redeemLimits.allow(p.KeyID, now); !ok {
		secs := int64(math.Ceil(wait.Seconds()))
		g.refuseUnread(w, st, &apiError{Status: http.StatusTooManyRequests, Type: typeRateLimit, Code: "rate_limit_exceeded",
			Message: fmt.Sprintf("too many voucher redemption attempts with this API key; try again in %d s", secs),
			Header:  http.Header{"Retry-After": {strconv.FormatInt(secs, 10)}}})
		return
	}
	body, release, aerr := g.readBody(w, r, maxRedeemBody)
	defer release()
	if aerr != nil {
		g.refuseUnread(w, st, aerr)
		return
	}
	code, aerr := decodeRedeem(body)
	if aerr != nil {
		g.fail(w, st, aerr)
		return
	}
	res, err := g.opts.Vouchers.RedeemVoucher(r.Context(), ledger.RedeemRequest{CodeHash: ledger.VoucherCodeHash(code), TenantID: p.TenantID, Time: now})
	switch {
	case errors.Is(err, ledger.ErrInvalidVoucher):
		// Logged without the code: a code in a log is a spendable code.
		g.log.Info("voucher refused", "request_id", st.id, "tenant", p.TenantID, "key_id", p.KeyID)
		g.fail(w, st, invalidVoucher())
		return
	case err != nil:
		if r.Context().Err() != nil {
			g.fail(w, st, clientClosed())
			return
		}
		g.log.Error("redeem: ledger", "request_id", st.id, "err", err)
		g.fail(w, st, &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "ledger_unavailable",
			Message: "the ledger could not be reached; nothing was redeemed, try again"})
		return
	}
	v := res.Voucher
	g.log.Info("voucher redeemed", "request_id", st.id, "voucher_id", v.ID, "tenant", p.TenantID, "key_id", p.KeyID, "amount", v.Amount.String())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Object         string `json:"object"`
		VoucherID      string `json:"voucher_id"`
		Tenant         string `json:"tenant"`
		Credited       string `json:"credited"`
		CreditedMicros int64  `json:"credited_micros"`
		admin.BalanceJSON
	}{"voucher_redemption", v.ID, p.TenantName, v.Amount.String(), int64(v.Amount), admin.BalanceOut(res.Account)})
}

// decodeRedeem reads {"code": "..."}, naming any other field.
func decodeRedeem(body []byte) (string, *apiError) {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&obj); err != nil || obj == nil || dec.More() {
		return "", badRequest("", `the request body must be one JSON object: {"code": "LLMV-…"}`)
	}
	var unknown []string
	for k := range obj {
		if k != "code" {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return "", badRequest(strings.Trim(unknown[0], `"`), `unknown field(s) %s: the request body is {"code": "LLMV-…"}`, strings.Join(unknown, ", "))
	}
	var code string
	raw, ok := obj["code"]
	if !ok || json.Unmarshal(raw, &code) != nil || strings.TrimSpace(code) == "" {
		return "", badRequest("code", `"code" is required: the voucher code as a string, such as "LLMV-ABCD-…"`)
	}
	return code, nil
}
