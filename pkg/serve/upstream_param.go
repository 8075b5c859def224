package serve

import "encoding/json"

// upstreamParam picks the param out of an upstream OpenAI-shaped error, so
// a client learns which field a backend (the embedded engine, say) refused.
func upstreamParam(body []byte) string {
	var v struct {
		Error struct {
			Param string `json:"param"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &v)
	return v.Error.Param
}
