package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

const (
	lemonOld = "ls_old_signing_secret"
	lemonNew = "ls_new_signing_secret"
)

// lemonOrder is an order event shaped like the example payloads of
// https://docs.lemonsqueezy.com/api/webhooks and the order object of
// https://docs.lemonsqueezy.com/api/orders/the-order-object, with the tenant
// passed through checkout[custom][tenant] as documented at
// https://docs.lemonsqueezy.com/help/checkout/passing-custom-data.
func lemonOrder(event, id, tenant, status string, total, refunded int64, currency string) []byte {
	return []byte(fmt.Sprintf(`{
  "meta": {"test_mode": false, "event_name": %q, "custom_data": {"tenant": %q}},
  "data": {
    "type": "orders",
    "id": %q,
    "attributes": {
      "store_id": 1,
      "customer_id": 1,
      "identifier": "636f855c-1fb9-4c07-b75c-3a10afef010a",
      "order_number": 1,
      "user_name": "Darlene Daugherty",
      "user_email": "gernser@example.com",
      "currency": %q,
      "currency_rate": "1.0000",
      "subtotal": 999,
      "discount_total": 0,
      "tax": 200,
      "total": %d,
      "refunded_amount": %d,
      "subtotal_usd": 999,
      "tax_usd": 200,
      "total_usd": %d,
      "tax_name": "VAT",
      "tax_rate": "20.00",
      "status": %q,
      "status_formatted": "Paid",
      "refunded": %t,
      "refunded_at": null,
      "first_order_item": {"id": 1, "order_id": 1, "product_id": 1, "variant_id": 1, "price": 1199, "test_mode": false},
      "created_at": "2021-08-17T09:45:53.000000Z",
      "updated_at": "2021-08-17T09:45:53.000000Z"
    },
    "relationships": {"store": {"links": {"related": "https://api.lemonsqueezy.com/v1/orders/1/store"}}},
    "links": {"self": "https://api.lemonsqueezy.com/v1/orders/1"}
  }
}`, event, tenant, id, currency, total, refunded, total, status, refunded > 0))
}

// signLemon signs as Lemon Squeezy documents it: the hex HMAC-SHA256 digest
// of the raw body keyed by the signing secret, in X-Signature.
func signLemon(body []byte, secret, event string) map[string]string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return map[string]string{"X-Signature": hex.EncodeToString(mac.Sum(nil)), "X-Event-Name": event, "Content-Type": "application/json"}
}

func dsns() map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db") },
		"postgres": func(t *testing.T) string { return testenv.PG(t).NewDatabase(t) },
	}
}

func TestLemonSqueezy(t *testing.T) {
	for name, dsn := range dsns() {
		t.Run(name, func(t *testing.T) { testLemonSqueezy(t, dsn(t)) })
	}
}

func testLemonSqueezy(t *testing.T, dsn string) {
	e := setup(t, dsn)
	paid := lemonOrder("order_created", "1", "acme", "paid", 1199, 0, "USD")
	if code, res := e.post(t, "lemonsqueezy", paid, signLemon(paid, lemonOld, "order_created")); code != 200 || res != "credited" {
		t.Fatalf("order_created: %d %s", code, res)
	}
	if got := e.balance(t); got != 11_990_000 {
		t.Fatalf("balance %s after $11.99, want 11.990000", got)
	}
	// Redelivered, signed with the rotated secret: nothing more.
	if code, res := e.post(t, "lemonsqueezy", paid, signLemon(paid, lemonNew, "order_created")); code != 200 || res != "duplicate" {
		t.Fatalf("replay: %d %s", code, res)
	}
	// The tenant named by id works too; a second order credits its own total.
	second := lemonOrder("order_created", "2", e.tenant.ID, "paid", 500, 0, "usd")
	if code, res := e.post(t, "lemonsqueezy", second, signLemon(second, lemonNew, "order_created")); code != 200 || res != "credited" {
		t.Fatalf("second order: %d %s", code, res)
	}
	// A partial refund of order 1 debits refunded_amount, once.
	refund := lemonOrder("order_refunded", "1", "acme", "paid", 1199, 301, "USD")
	for _, res := range []string{"debited", "duplicate"} {
		if code, got := e.post(t, "lemonsqueezy", refund, signLemon(refund, lemonOld, "order_refunded")); code != 200 || got != res {
			t.Fatalf("refund: %d %s, want 200 %s", code, got, res)
		}
	}
	const balance = 11_990_000 + 5_000_000 - 3_010_000
	if got := e.balance(t); got != balance {
		t.Fatalf("balance %s, want %s", got, ledger.Micros(balance))
	}

	before := len(e.entries())
	for name, c := range map[string]struct {
		body []byte
		hdr  map[string]string
		code int
		res  string
	}{
		"wrong secret":             {paid, signLemon(paid, "someone_else", "order_created"), 400, "bad_signature"},
		"no signature":             {paid, map[string]string{"X-Event-Name": "order_created"}, 400, "bad_signature"},
		"not hex":                  {paid, map[string]string{"X-Signature": "zz" + strings.Repeat("0", 62)}, 400, "bad_signature"},
		"short":                    {paid, map[string]string{"X-Signature": "abcd"}, 400, "bad_signature"},
		"body altered":             {append(bytes.Clone(paid), ' '), signLemon(paid, lemonOld, "order_created"), 400, "bad_signature"},
		"new order, forged":        {lemonOrder("order_created", "9", "acme", "paid", 100, 0, "USD"), signLemon(paid, lemonOld, "order_created"), 400, "bad_signature"},
		"unknown tenant":           {lemonOrder("order_created", "3", "nobody", "paid", 100, 0, "USD"), nil, 200, "unknown_tenant"},
		"pending order":            {lemonOrder("order_created", "4", "acme", "pending", 100, 0, "USD"), nil, 200, "ignored"},
		"other currency":           {lemonOrder("order_created", "5", "acme", "paid", 100, 0, "EUR"), nil, 200, "ignored"},
		"unhandled":                {lemonOrder("subscription_created", "6", "acme", "paid", 100, 0, "USD"), nil, 200, "ignored"},
		"no tenant":                {bytes.Replace(lemonOrder("order_created", "7", "", "paid", 100, 0, "USD"), []byte(`"tenant": ""`), []byte(`"user_id": "1"`), 1), nil, 400, "bad_request"},
		"header and body disagree": {lemonOrder("order_refunded", "1", "acme", "paid", 1199, 1199, "USD"), map[string]string{"X-Event-Name": "order_created"}, 400, "bad_request"},
		"not json":                 {[]byte("{"), nil, 400, "bad_request"},
	} {
		hdr := c.hdr
		if hdr == nil {
			hdr = signLemon(c.body, lemonOld, "")
		} else if _, ok := hdr["X-Signature"]; !ok && name == "header and body disagree" {
			hdr = signLemon(c.body, lemonOld, hdr["X-Event-Name"])
		}
		if code, res := e.post(t, "lemonsqueezy", c.body, hdr); code != c.code || res != c.res {
			t.Errorf("%s: %d %s, want %d %s", name, code, res, c.code, c.res)
		}
	}
	if after := len(e.entries()); after != before {
		t.Fatalf("rejected or ignored deliveries wrote %d entries", after-before)
	}
	if got := e.balance(t); got != balance {
		t.Fatalf("balance %s after refused deliveries, want %s", got, ledger.Micros(balance))
	}
	mf, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if n := counter(mf, "lemonsqueezy", "bad_signature"); n != 6 {
		t.Fatalf("bad_signature counted %v times, want 6", n)
	}
	if n := counter(mf, "lemonsqueezy", "unknown_tenant"); n != 1 {
		t.Fatalf("unknown_tenant counted %v times, want 1", n)
	}
	if !strings.Contains(e.logs.String(), "unknown tenant") {
		t.Fatalf("unknown tenant not logged:\n%s", e.logs)
	}
	for _, secret := range []string{lemonOld, lemonNew} {
		if strings.Contains(e.logs.String(), secret) {
			t.Fatal("a signing secret was logged")
		}
	}
	if r, err := e.store.Verify(context.Background()); err != nil || !r.OK() {
		t.Fatalf("verify: %+v %v", r, err)
	}
}

// The provider retries, and may deliver the same event to several replicas
// at once: 16 concurrent deliveries of one order (and of its refund) credit
// and debit it exactly once.
func TestLemonSqueezyConcurrentDeliveries(t *testing.T) {
	for name, dsn := range dsns() {
		t.Run(name, func(t *testing.T) {
			e := setup(t, dsn(t))
			paid := lemonOrder("order_created", "42", "acme", "paid", 2501, 0, "USD")
			refund := lemonOrder("order_refunded", "42", "acme", "refunded", 2501, 2501, "USD")
			results := make(chan string, 64)
			var wg sync.WaitGroup
			for i := range 32 {
				body, ev := paid, "order_created"
				if i%2 == 1 {
					body, ev = refund, "order_refunded"
				}
				secret := []string{lemonOld, lemonNew}[i%4/2]
				wg.Go(func() {
					code, res := e.post(t, "lemonsqueezy", body, signLemon(body, secret, ev))
					if code != http.StatusOK {
						res = fmt.Sprintf("%d %s", code, res)
					}
					results <- res
				})
			}
			wg.Wait()
			close(results)
			n := map[string]int{}
			for r := range results {
				n[r]++
			}
			if n["credited"] != 1 || n["debited"] != 1 || n["duplicate"] != 30 {
				t.Fatalf("outcomes %v, want one credited, one debited, 30 duplicates", n)
			}
			if got := e.balance(t); got != 0 {
				t.Fatalf("balance %s after a paid and fully refunded order, want 0", got)
			}
			if len(e.entries()) != 2 {
				t.Fatalf("%d entries, want 2", len(e.entries()))
			}
		})
	}
}

func TestLemonSqueezyDatabaseDownIsRetryable(t *testing.T) {
	for name, dsn := range dsns() {
		t.Run(name, func(t *testing.T) {
			e := setup(t, dsn(t))
			e.store.Close() // the ledger's database goes away
			paid := lemonOrder("order_created", "1", "acme", "paid", 100, 0, "USD")
			if code, _ := e.post(t, "lemonsqueezy", paid, signLemon(paid, lemonOld, "order_created")); code < 500 {
				t.Fatalf("database failure answered %d; Lemon Squeezy would not retry", code)
			}
		})
	}
}

// An order id too long for the ledger's idempotency key is refused for good.
func TestLemonSqueezyLongOrderID(t *testing.T) {
	e := setup(t, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
	// "lemonsqueezy:" + id + ":order_created" is at most 256 bytes.
	fits := strings.Repeat("7", 256-len("lemonsqueezy:")-len(":order_created"))
	for id, want := range map[string]string{fits + "7": "rejected", fits: "credited"} {
		body := lemonOrder("order_created", id, "acme", "paid", 1, 0, "USD")
		if _, res := e.post(t, "lemonsqueezy", body, signLemon(body, lemonOld, "order_created")); res != want {
			t.Errorf("%d-byte order id: %s, want %s", len(id), res, want)
		}
	}
	if got := e.balance(t); got != 10_000 {
		t.Fatalf("balance %s, want 0.010000", got)
	}
}
