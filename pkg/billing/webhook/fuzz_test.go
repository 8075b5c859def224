package webhook

import (
	"testing"
	"time"
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

func FuzzParseEvents(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"charge.refunded","data":{"object":{"amount_refunded":300,"currency":"usd","metadata":{"tenant":"a"}},"previous_attributes":{"amount_refunded":100}}}`))
	f.Add([]byte(`{"type":"payment.succeeded","data":{"tenant":"a","amount_micros":1}}`))
	f.Add([]byte(`{"id":"e","type":"invoice.paid","data":{"object":{"amount_paid":922337203685477580,"currency":"usd","metadata":{"tenant":"a"}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range []func() (payment, error){
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
			refund := pay.typ == "charge.refunded" || pay.typ == "payment.refunded"
			if refund != (pay.amount < 0) {
				t.Fatalf("sign of %s is wrong: %+v", pay.typ, pay)
			}
		}
	})
}
