package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// Lemon Squeezy, as documented at
//   - https://docs.lemonsqueezy.com/help/webhooks/signing-requests
//     (X-Signature: hex HMAC-SHA256 of the raw body keyed by the signing secret)
//   - https://docs.lemonsqueezy.com/api/webhooks (X-Event-Name; the body is the
//     JSON:API object of the event, meta.event_name; retried on non-200)
//   - https://docs.lemonsqueezy.com/api/orders/the-order-object (total and
//     refunded_amount in cents of currency; status pending|failed|paid|refunded)
//   - https://docs.lemonsqueezy.com/help/checkout/passing-custom-data
//     (checkout[custom][tenant]=… arrives as meta.custom_data.tenant)
//
// The signature carries no timestamp, so a captured delivery can be
// replayed at any time: what makes that harmless is the idempotency key,
// the order id and event name.

// VerifyLemonSqueezy checks an X-Signature header against the raw body under
// each configured secret, in constant time.
func VerifyLemonSqueezy(body []byte, header string, secrets []string) error {
	sig, err := hex.DecodeString(strings.TrimSpace(header))
	if err != nil || len(sig) != sha256.Size {
		return fmt.Errorf("%w: X-Signature must be a hex HMAC-SHA256", ErrSignature)
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		keys[i] = []byte(s)
	}
	return anyMatch(keys, [][]byte{sig}, body)
}

// lemonEvent is the part of a Lemon Squeezy order event we read.
type lemonEvent struct {
	Meta struct {
		EventName  string         `json:"event_name"`
		CustomData map[string]any `json:"custom_data"`
	} `json:"meta"`
	Data struct {
		Type       string `json:"type"`
		ID         string `json:"id"`
		Attributes struct {
			Currency       string `json:"currency"`
			Status         string `json:"status"`
			Total          *int64 `json:"total"`
			RefundedAmount *int64 `json:"refunded_amount"`
		} `json:"attributes"`
	} `json:"data"`
}

// parseLemonSqueezy maps a verified delivery to a payment:
//   - order_created with status "paid": credit total
//   - order_refunded: debit refunded_amount (the order's refunded total)
//
// keyed "<order id>:<event>", so each is applied at most once per order. A
// second partial refund of the same order is therefore not debited again:
// the operator adjusts it by hand (docs/billing.md).
func parseLemonSqueezy(eventHeader string, body []byte, currency string) (payment, error) {
	var ev lemonEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return payment{}, fmt.Errorf("lemon squeezy event: %w", err)
	}
	name := ev.Meta.EventName
	if name == "" {
		name = eventHeader
	}
	if eventHeader != "" && eventHeader != name {
		return payment{}, fmt.Errorf("lemon squeezy event: X-Event-Name %q but meta.event_name %q", clip(eventHeader), clip(name))
	}
	attr := ev.Data.Attributes
	p := payment{provider: "lemonsqueezy", typ: name}
	if t, ok := ev.Meta.CustomData["tenant"].(string); ok {
		p.tenant = t
	}
	var cents *int64
	sign := ledger.Micros(1)
	switch name {
	case "order_created":
		if attr.Status != "paid" {
			p.ignore = fmt.Sprintf("order status %q is not paid", attr.Status)
			return p, nil
		}
		cents = attr.Total
	case "order_refunded":
		cents, sign = attr.RefundedAmount, -1
	case "":
		return payment{}, errors.New("lemon squeezy event: no X-Event-Name or meta.event_name")
	default:
		p.ignore = "unhandled event type"
		return p, nil
	}
	if ev.Data.Type != "orders" || ev.Data.ID == "" {
		return payment{}, fmt.Errorf("lemon squeezy %s: data must be an orders object with an id", name)
	}
	p.eventID = ev.Data.ID + ":" + name
	if cents == nil {
		return payment{}, fmt.Errorf("lemon squeezy %s: no amount", name)
	}
	if !strings.EqualFold(attr.Currency, currency) {
		p.ignore = fmt.Sprintf("currency %q is not the ledger's %q", attr.Currency, currency)
		return p, nil
	}
	if p.tenant == "" {
		return payment{}, fmt.Errorf("lemon squeezy %s: no tenant in meta.custom_data.tenant", name)
	}
	m, err := centsToMicros(*cents)
	if err != nil {
		return payment{}, fmt.Errorf("lemon squeezy %s: %w", name, err)
	}
	if m == 0 {
		p.ignore = "zero amount"
		return p, nil
	}
	p.amount = sign * m
	return p, nil
}
