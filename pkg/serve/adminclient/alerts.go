package adminclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Delivery is one alert sent (or being sent) to one endpoint.
type Delivery struct {
	ID             int64      `json:"id"`
	EventID        string     `json:"event_id"`
	Type           string     `json:"type"`
	TenantID       string     `json:"tenant_id,omitempty"`
	Endpoint       string     `json:"endpoint"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty"`
	LastStatusCode int        `json:"last_status_code,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	DeliveredAt    *time.Time `json:"delivered_at,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
}

// DeliveryQuery filters Deliveries; zero fields are not sent.
type DeliveryQuery struct {
	Status string // pending, delivered or failed
	Tenant string // name or id
	Limit  int
	Cursor string
}

// Deliveries is GET /admin/v1/alerts/deliveries: one page, newest first;
// next is empty on the last page.
func (c *Client) Deliveries(ctx context.Context, q DeliveryQuery) (ds []Delivery, next string, err error) {
	v := url.Values{}
	for k, s := range map[string]string{"status": q.Status, "tenant": q.Tenant, "cursor": q.Cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var l struct {
		Data       []Delivery `json:"data"`
		NextCursor string     `json:"next_cursor,omitempty"`
	}
	_, err = c.do(ctx, http.MethodGet, "/admin/v1/alerts/deliveries", v, nil, &l)
	return l.Data, l.NextCursor, err
}

// Redeliver is POST /admin/v1/alerts/deliveries/{id}/redeliver.
func (c *Client) Redeliver(ctx context.Context, id int64) (Delivery, error) {
	var d Delivery
	_, err := c.do(ctx, http.MethodPost, "/admin/v1/alerts/deliveries/"+strconv.FormatInt(id, 10)+"/redeliver", nil, nil, &d)
	return d, err
}

// TenantAlerts is a tenant's balance.low threshold and whether it is its
// own ("tenant") or the gateway's default.
type TenantAlerts struct {
	Tenant           string `json:"tenant"`
	LowBalance       string `json:"low_balance"`
	LowBalanceMicros int64  `json:"low_balance_micros"`
	Source           string `json:"source"`
}

// TenantAlerts is GET /admin/v1/tenants/{name}/alerts.
func (c *Client) TenantAlerts(ctx context.Context, tenant string) (TenantAlerts, error) {
	var a TenantAlerts
	_, err := c.do(ctx, http.MethodGet, "/admin/v1/tenants/"+esc(tenant)+"/alerts", nil, nil, &a)
	return a, err
}

// SetTenantLowBalance is PUT /admin/v1/tenants/{name}/alerts; nil returns
// the tenant to the default.
func (c *Client) SetTenantLowBalance(ctx context.Context, tenant string, amount *string) (TenantAlerts, error) {
	var a TenantAlerts
	_, err := c.do(ctx, http.MethodPut, "/admin/v1/tenants/"+esc(tenant)+"/alerts", nil, map[string]*string{"low_balance": amount}, &a)
	return a, err
}
