package webhook

import (
	"encoding/json"
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

func FuzzVerifyStripe(f *testing.F) {
	f.Add([]byte(`{"id":"evt"}`), "t=1700000000,v1=00ff")
	f.Add([]byte(""), "t=,v1=,v1=zz,,=")
	f.Add([]byte("x"), "v1=abc")
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		if VerifyStripe(body, header, []string{"whsec_fuzz"}, 300*time.Second, now) == nil {
			t.Fatalf("forged Stripe-Signature accepted: %q", header)
		}
	})
}

func FuzzVerifyStandard(f *testing.F) {
	f.Add([]byte(`{}`), "msg_1", "1700000000", "v1,AAAA v2,BBBB")
	f.Add([]byte(""), "", "", "")
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, body []byte, id, ts, header string) {
		if VerifyStandard(body, id, ts, header, [][]byte{[]byte("fuzz-key")}, 300*time.Second, now) == nil {
			t.Fatalf("forged webhook-signature accepted: %q", header)
		}
	})
}

func FuzzVerifyLemonSqueezy(f *testing.F) {
	f.Add([]byte(`{"meta":{"event_name":"order_created"}}`), "00ff")
	f.Add([]byte(""), "")
	f.Add([]byte("x"), " 0000000000000000000000000000000000000000000000000000000000000000 ")
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		if VerifyLemonSqueezy(body, header, []string{"fuzz-secret", "other"}) == nil {
			t.Fatalf("forged X-Signature accepted: %q", header)
		}
	})
}

func FuzzParseEvents(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"charge.refunded","data":{"object":{"amount_refunded":300,"currency":"usd","metadata":{"tenant":"a"}},"previous_attributes":{"amount_refunded":100}}}`))
	f.Add([]byte(`{"type":"payment.succeeded","data":{"tenant":"a","amount_micros":1}}`))
	f.Add([]byte(`{"id":"e","type":"invoice.paid","data":{"object":{"amount_paid":922337203685477580,"currency":"usd","metadata":{"tenant":"a"}}}}`))
	// Wrapped around to 6 cents before the running totals were checked.
	f.Add([]byte(`{"id":"evt_w","type":"charge.refunded","data":{"object":{"amount_refunded":-9223372036854775803,"currency":"usd","metadata":{"tenant":"a"}},"previous_attributes":{"amount_refunded":9223372036854775807}}}`))
	f.Add([]byte(`{"meta":{"event_name":"order_created","custom_data":{"tenant":"a"}},"data":{"type":"orders","id":"1","attributes":{"currency":"USD","status":"paid","total":1199}}}`))
	f.Add([]byte(`{"meta":{"event_name":"order_refunded","custom_data":{"tenant":"a"}},"data":{"type":"orders","id":"1","attributes":{"currency":"USD","status":"refunded","total":1199,"refunded_amount":-5}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range []func() (payment, error){
			func() (payment, error) { return parseLemonSqueezy("", body, "usd") },
			func() (payment, error) { return parseStripe(body, "usd") },
			func() (payment, error) { return parseStandard("msg", body, "usd") },
		} {
			pay, err := p()
			if err != nil || pay.ignore != "" {
				continue
			}
			// Anything acted on names a tenant and moves money by a
			// whole, non-zero amount with the sign of its kind.
			if pay.tenant == "" || pay.amount == 0 {
				t.Fatalf("accepted payment without tenant or amount: %+v", pay)
			}
			refund := pay.typ == "charge.refunded" || pay.typ == "payment.refunded" || pay.typ == "order_refunded"
			if refund != (pay.amount < 0) {
				t.Fatalf("sign of %s is wrong: %+v", pay.typ, pay)
			}
			if pay.provider == "stripe" && pay.typ == "charge.refunded" {
				// A refund debits at most the charge's refunded total.
				var ev stripeEvent
				_ = json.Unmarshal(body, &ev)
				if r := ev.Data.Object.AmountRefunded; r == nil || -pay.amount/10_000 > ledger.Micros(*r) {
					t.Fatalf("refund debits more than amount_refunded: %+v", pay)
				}
			}
		}
	})
}

// FuzzFits checks the overflow test that refuses a payment against exact
// arithmetic: it passes exactly when the new balance and what it leaves
// available (balance − reserved) are both int64.
func FuzzFits(f *testing.F) {
	f.Add(int64(12_500_001), int64(0), int64(math.MaxInt64-12_500_000))
	f.Add(int64(12_500_001), int64(0), int64(math.MaxInt64-12_500_001))
	f.Add(int64(math.MinInt64+5), int64(0), int64(-6))
	f.Add(int64(-10), int64(math.MaxInt64), int64(-1))
	f.Fuzz(func(t *testing.T, balance, reserved, amount int64) {
		if reserved < 0 {
			t.Skip() // the ledger never holds a negative reservation
		}
		inRange := func(v *big.Int) bool { return v.IsInt64() }
		b := new(big.Int).Add(big.NewInt(balance), big.NewInt(amount))
		want := inRange(b) && inRange(new(big.Int).Sub(b, big.NewInt(reserved)))
		a := ledger.Account{Balance: ledger.Micros(balance), Reserved: ledger.Micros(reserved)}
		if got := fits(a, ledger.Micros(amount)); got != want {
			t.Fatalf("fits(balance %d, reserved %d, amount %d) = %v, want %v", balance, reserved, amount, got, want)
		}
	})
}
