package serve

import (
	"encoding/json"

	"github.com/llmctl/llmctl/pkg/billing"
)

// POST /v1/rerank and /v1/score take the inference path of any request
// (key, scopes, admission, a reservation of the prompt estimate and no
// completion, settled from the backend's usage) but only the backends
// serving the model that declare the rerank protocol (llama.cpp's server,
// vLLM) answer them, on the same path, body and answer passed through.

// decodeScoring checks the rest of a rerank or score body, whose model cr
// holds: not streamed, with something to score. The body is otherwise the
// backend's business. Its prompt estimate is the size of the texts.
func decodeScoring(cr *clientRequest) (*clientRequest, *apiError) {
	cr.only = "rerank"
	var stream bool
	if err := decodeField(cr.fields, "stream", &stream); err != nil {
		return nil, err
	}
	if stream {
		return nil, badRequest("stream", "%s cannot be streamed", cr.endpoint)
	}
	// The texts scored: llama.cpp's and vLLM's rerank (query, documents or
	// texts) and vLLM's score (text_1, text_2, or queries and documents).
	size := 0
	for _, k := range []string{"query", "documents", "texts", "text_1", "text_2", "queries"} {
		if v, ok := cr.fields[k]; ok && !isNull(v) {
			size += len(v)
		}
	}
	if size == 0 {
		if cr.endpoint == EndpointScore {
			return nil, badRequest("text_1", "you must provide text_1 and text_2 (or queries and documents)")
		}
		return nil, badRequest("query", "you must provide a query and documents")
	}
	cr.promptEstimate = int64(size)/4 + 1
	return cr, nil
}

// rerankUsage is a rerank or score answer's usage: prompt_tokens (llama.cpp,
// vLLM), else total_tokens (vLLM's rerank reports only that; scoring
// generates nothing, so it is all prompt); nil when neither is reported,
// and the estimate is charged.
func rerankUsage(body []byte) *billing.Usage {
	var v struct {
		Usage *struct {
			PromptTokens *int64 `json:"prompt_tokens"`
			TotalTokens  *int64 `json:"total_tokens"`
		} `json:"usage"`
	}
	if json.Unmarshal(body, &v) != nil || v.Usage == nil {
		return nil
	}
	switch u := v.Usage; {
	case u.PromptTokens != nil && *u.PromptTokens > 0:
		return &billing.Usage{PromptTokens: *u.PromptTokens}
	case u.TotalTokens != nil:
		return &billing.Usage{PromptTokens: max(*u.TotalTokens, 0)}
	case u.PromptTokens != nil:
		return &billing.Usage{PromptTokens: 0}
	}
	return nil
}
