package serve

import (
	"testing"

	"github.com/llmctl/llmctl/pkg/billing"
)

// TestWhoIsPriority: a key's priority comes from the config's entry for
// the key, else the key's stored priority (admin API, `keys update`),
// else the config's entry for its tenant, else normal.
func TestWhoIsPriority(t *testing.T) {
	p := billing.Principal{KeyID: "k1", TenantID: "ten_1", TenantName: "acme"}
	stored := p
	stored.Priority = billing.PriorityHigh
	for _, tc := range []struct {
		config map[string]string
		p      billing.Principal
		want   string
	}{
		{nil, p, ""},
		{nil, stored, "high"},
		{map[string]string{"acme": "low"}, p, "low"},
		{map[string]string{"acme": "low"}, stored, "high"},
		{map[string]string{"ten_1": "low"}, stored, "high"},
		{map[string]string{"k1": "low", "acme": "high"}, stored, "low"},
	} {
		g := &Gateway{opts: Options{Queue: QueueOptions{Priorities: tc.config}}}
		w := g.whoIs(tc.p)
		tier, _ := tierOf(tc.want)
		if w.priority != tc.want || w.tier != tier {
			t.Errorf("config %v, stored %q: priority %q tier %d, want %q", tc.config, tc.p.Priority, w.priority, w.tier, tc.want)
		}
	}
}
