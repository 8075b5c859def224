package adminclient

import (
	"context"
	"net/http"
)

// KeyPatch is what UpdateKey sends; nil fields are left as they are.
type KeyPatch struct {
	// Priority in the admission queue: high, normal or low; "" unsets it.
	Priority *string `json:"priority,omitempty"`
	// BatchRPM and BatchTPM are the key's batch-only limits; 0 = the
	// config's default (limits.batch).
	BatchRPM *int64 `json:"batch_rpm,omitempty"`
	BatchTPM *int64 `json:"batch_tpm,omitempty"`
}

// UpdateKey is PATCH /admin/v1/keys/{id} with the fields of p.
func (c *Client) UpdateKey(ctx context.Context, id string, p KeyPatch) (Key, error) {
	var k Key
	_, err := c.do(ctx, http.MethodPatch, "/admin/v1/keys/"+esc(id), nil, p, &k)
	return k, err
}
