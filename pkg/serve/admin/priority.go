package admin

import (
	"encoding/json"

	"github.com/llmctl/llmctl/pkg/billing"
)

// priority reads a key's queue priority: "high", "normal" or "low", or ""
// (not set; on PATCH, unset).
func priority(dst *string) field {
	return func(name string, raw json.RawMessage) *apiError {
		if e := text(dst)(name, raw); e != nil {
			return e
		}
		if billing.CheckPriority(*dst) != nil {
			return badRequest(name, "%q must be %q, %q or %q (got %q)", name,
				billing.PriorityHigh, billing.PriorityNormal, billing.PriorityLow, *dst)
		}
		return nil
	}
}

// optPriority is priority for a PATCH: nil when not sent.
func optPriority(dst **string) field {
	return func(name string, raw json.RawMessage) *apiError {
		var p string
		if e := priority(&p)(name, raw); e != nil {
			return e
		}
		*dst = &p
		return nil
	}
}
