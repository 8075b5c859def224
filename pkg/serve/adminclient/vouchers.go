package adminclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Voucher is a voucher as the admin API shows it; Code only in the answer
// of CreateVouchers.
type Voucher struct {
	ID           string     `json:"id"`
	Code         string     `json:"code,omitempty"`
	Amount       string     `json:"amount"`
	AmountMicros int64      `json:"amount_micros"`
	Tenant       string     `json:"tenant,omitempty"`
	State        string     `json:"state"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    *time.Time `json:"expires_at"`
	RedeemedAt   *time.Time `json:"redeemed_at"`
	RedeemedBy   string     `json:"redeemed_by,omitempty"`
	RevokedAt    *time.Time `json:"revoked_at"`
}

// NewVouchers asks for Count vouchers of Amount (currency units) each;
// ExpiresIn "" never expires, Tenant "" may be redeemed by any tenant.
type NewVouchers struct {
	Amount    string `json:"amount"`
	Count     int    `json:"count,omitempty"`
	ExpiresIn string `json:"expires_in,omitempty"`
	Tenant    string `json:"tenant,omitempty"`
}

// CreateVouchers is POST /admin/v1/vouchers: the only answer with the codes.
func (c *Client) CreateVouchers(ctx context.Context, n NewVouchers) ([]Voucher, error) {
	var l list[Voucher]
	_, err := c.do(ctx, http.MethodPost, "/admin/v1/vouchers", nil, n, &l)
	return l.Data, err
}

// ListVouchers is GET /admin/v1/vouchers, newest first; limit 0 = all.
func (c *Client) ListVouchers(ctx context.Context, limit int) ([]Voucher, error) {
	var q url.Values
	if limit > 0 {
		q = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	var l list[Voucher]
	_, err := c.do(ctx, http.MethodGet, "/admin/v1/vouchers", q, nil, &l)
	return l.Data, err
}

// RevokeVoucher is POST /admin/v1/vouchers/{id}/revoke.
func (c *Client) RevokeVoucher(ctx context.Context, id string) (Voucher, error) {
	var v Voucher
	_, err := c.do(ctx, http.MethodPost, "/admin/v1/vouchers/"+esc(id)+"/revoke", nil, nil, &v)
	return v, err
}

// Redemption is the answer of POST /v1/me/redeem.
type Redemption struct {
	VoucherID      string `json:"voucher_id"`
	Tenant         string `json:"tenant"`
	Credited       string `json:"credited"`
	CreditedMicros int64  `json:"credited_micros"`
	Balance
}

// Redeem is POST /v1/me/redeem: any key credits its own tenant.
func (c *Client) Redeem(ctx context.Context, code string) (Redemption, error) {
	var r Redemption
	_, err := c.do(ctx, http.MethodPost, "/v1/me/redeem", nil, struct {
		Code string `json:"code"`
	}{code}, &r)
	return r, err
}
