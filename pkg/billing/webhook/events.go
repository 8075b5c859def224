package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// stripeEvent is the part of a Stripe event we read.
type stripeEvent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		Object struct {
			AmountTotal       *int64            `json:"amount_total"`    // checkout.session
			AmountPaid        *int64            `json:"amount_paid"`     // invoice
			AmountRefunded    *int64            `json:"amount_refunded"` // charge
			Currency          string            `json:"currency"`
			PaymentStatus     string            `json:"payment_status"`
			Metadata          map[string]string `json:"metadata"`
			ClientReferenceID string            `json:"client_reference_id"`
		} `json:"object"`
		PreviousAttributes struct {
			AmountRefunded *int64 `json:"amount_refunded"`
		} `json:"previous_attributes"`
	} `json:"data"`
}

// centsToMicros converts a two-decimal currency's minor units.
func centsToMicros(c int64) (ledger.Micros, error) {
	if c < 0 || c > math.MaxInt64/10_000 {
		return 0, fmt.Errorf("amount %d out of range", c)
	}
	return ledger.Micros(c * 10_000), nil
}

// parseStripe maps a verified Stripe event to a payment:
//   - checkout.session.completed (payment_status paid) and
//     checkout.session.async_payment_succeeded: credit amount_total
//   - invoice.paid: credit amount_paid
//   - charge.refunded: debit what this event refunded (amount_refunded
//     minus previous_attributes.amount_refunded)
//
// The tenant is metadata.tenant (id or name), else client_reference_id.
func parseStripe(body []byte, currency string) (payment, error) {
	var ev stripeEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return payment{}, fmt.Errorf("stripe event: %w", err)
	}
	if ev.ID == "" || ev.Type == "" {
		return payment{}, errors.New("stripe event: id and type are required")
	}
	obj := ev.Data.Object
	p := payment{provider: "stripe", eventID: ev.ID, typ: ev.Type, tenant: obj.Metadata["tenant"]}
	if p.tenant == "" {
		p.tenant = obj.ClientReferenceID
	}
	var cents *int64
	sign := int64(1)
	switch ev.Type {
	case "checkout.session.completed":
		if obj.PaymentStatus != "paid" {
			p.ignore = fmt.Sprintf("payment_status %q (credited on checkout.session.async_payment_succeeded)", obj.PaymentStatus)
			return p, nil
		}
		cents = obj.AmountTotal
	case "checkout.session.async_payment_succeeded":
		cents = obj.AmountTotal
	case "invoice.paid":
		cents = obj.AmountPaid
	case "charge.refunded":
		if obj.AmountRefunded == nil {
			return payment{}, errors.New("stripe charge.refunded: no amount_refunded")
		}
		d := *obj.AmountRefunded
		if prev := ev.Data.PreviousAttributes.AmountRefunded; prev != nil {
			// Both are running totals that only grow. Anything else is no
			// refund to debit, and an unchecked subtraction of such values
			// can wrap around to a plausible amount.
			if *prev < 0 || *prev > d {
				return payment{}, fmt.Errorf("stripe charge.refunded: amount_refunded %d after %d", d, *prev)
			}
			d -= *prev
		}
		cents, sign = &d, -1
	default:
		p.ignore = "unhandled event type"
		return p, nil
	}
	if cents == nil {
		return payment{}, fmt.Errorf("stripe %s: no amount", ev.Type)
	}
	if !strings.EqualFold(obj.Currency, currency) {
		p.ignore = fmt.Sprintf("currency %q is not the ledger's %q", obj.Currency, currency)
		return p, nil
	}
	if p.tenant == "" {
		return payment{}, fmt.Errorf("stripe %s: no tenant in metadata.tenant or client_reference_id", ev.Type)
	}
	m, err := centsToMicros(*cents)
	if err != nil {
		return payment{}, fmt.Errorf("stripe %s: %w", ev.Type, err)
	}
	if m == 0 {
		p.ignore = "zero amount"
		return p, nil
	}
	p.amount = ledger.Micros(sign) * m
	return p, nil
}

// standardEvent is llmctl's payload for Standard Webhooks senders:
//
//	{"type": "payment.succeeded" | "payment.refunded",
//	 "data": {"tenant": "acme", "amount_micros": 12500000, "currency": "usd"}}
type standardEvent struct {
	Type string `json:"type"`
	Data struct {
		Tenant       string `json:"tenant"`
		AmountMicros int64  `json:"amount_micros"`
		Currency     string `json:"currency"`
	} `json:"data"`
}

func parseStandard(id string, body []byte, currency string) (payment, error) {
	var ev standardEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return payment{}, fmt.Errorf("standard webhook: %w", err)
	}
	p := payment{provider: "standard", eventID: id, typ: ev.Type, tenant: ev.Data.Tenant}
	sign := ledger.Micros(1)
	switch ev.Type {
	case "payment.succeeded":
	case "payment.refunded":
		sign = -1
	default:
		p.ignore = "unhandled event type"
		return p, nil
	}
	if ev.Data.Currency != "" && !strings.EqualFold(ev.Data.Currency, currency) {
		p.ignore = fmt.Sprintf("currency %q is not the ledger's %q", ev.Data.Currency, currency)
		return p, nil
	}
	if p.tenant == "" {
		return payment{}, fmt.Errorf("standard webhook %s: data.tenant is required", ev.Type)
	}
	if ev.Data.AmountMicros <= 0 {
		return payment{}, fmt.Errorf("standard webhook %s: data.amount_micros must be positive", ev.Type)
	}
	p.amount = sign * ledger.Micros(ev.Data.AmountMicros)
	return p, nil
}
