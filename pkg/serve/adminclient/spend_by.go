package adminclient

import (
	"context"
	"net/http"
	"time"
)

// SpendRow is one row of a split spend: the field named by the split is set.
type SpendRow struct {
	Model *string `json:"model,omitempty"`
	KeyID *string `json:"key_id,omitempty"`
	User  *string `json:"user,omitempty"` // the requests' OpenAI user field
	// Batch is the batch id of by=batch ("" for interactive requests).
	Batch *string `json:"batch_id,omitempty"`
	Spend
}

// SplitSpendReport is a tenant's spend split by model, key, user or batch.
type SplitSpendReport struct {
	SpendReport
	By   string     `json:"by"`
	Data []SpendRow `json:"data"`
}

// SpendBy is GET /admin/v1/tenants/{name}/spend?by=BY (model, key, user or batch).
func (c *Client) SpendBy(ctx context.Context, tenant string, since, until time.Time, by string) (SplitSpendReport, error) {
	v := window(since, until)
	v.Set("by", by)
	var s SplitSpendReport
	_, err := c.do(ctx, http.MethodGet, "/admin/v1/tenants/"+esc(tenant)+"/spend", v, nil, &s)
	return s, err
}
