package engine

import (
	"math"
	"strconv"

	"github.com/llmctl/llmctl/pkg/serve"
)

// checkFields refuses, by name, the request fields that would change the
// answer but that the engine does not do, so that a client never gets a
// plain answer where it asked for something else.
func checkFields(ep serve.Endpoint, r *request) error {
	switch {
	case r.Suffix != nil && *r.Suffix != "":
		return badParam("suffix", "suffix (fill-in-the-middle) is not supported by the embedded engine")
	case r.BestOf != nil && *r.BestOf != 1:
		return badParam("best_of", "the embedded engine produces one sequence per request (best_of=1)")
	case len(r.Functions) > 0 && string(r.Functions) != "null":
		return badParam("functions", "functions is the deprecated form of tools; send tools instead")
	case len(r.FunctionCall) > 0 && string(r.FunctionCall) != "null":
		return badParam("function_call", "function_call is the deprecated form of tool_choice; send tool_choice instead")
	case r.Echo && ep == serve.EndpointChat:
		return badParam("echo", "echo is a completions parameter")
	case r.Echo:
		if _, ok := jsonString(r.Prompt); !ok {
			return badParam("echo", "echo needs prompt to be one string")
		}
	}
	if ep == serve.EndpointCompletions && (len(r.Tools) > 0 && string(r.Tools) != "null" || len(r.ToolChoice) > 0 && string(r.ToolChoice) != "null") {
		return badParam("tools", "tools are a chat/completions parameter")
	}
	return nil
}

// logprobsRequest reads logprobs (chat: a boolean, with top_logprobs 0-20
// alternatives; completions: the number of alternatives, 0-5) into the
// number of alternatives to record, or -1 for none.
func logprobsRequest(ep serve.Endpoint, r *request) (int, error) {
	raw := string(r.Logprobs)
	if ep == serve.EndpointChat {
		on := false
		switch raw {
		case "", "null", "false":
		case "true":
			on = true
		default:
			return 0, badParam("logprobs", "logprobs must be true or false")
		}
		if r.TopLogprobs == nil {
			if on {
				return 0, nil
			}
			return -1, nil
		}
		switch n := *r.TopLogprobs; {
		case n < 0 || n > 20:
			return 0, badParam("top_logprobs", "top_logprobs must be between 0 and 20")
		case !on:
			return 0, badParam("top_logprobs", "top_logprobs needs logprobs: true")
		default:
			return n, nil
		}
	}
	if r.TopLogprobs != nil {
		return 0, badParam("top_logprobs", "top_logprobs is a chat/completions parameter; completions take logprobs: <count>")
	}
	if raw == "" || raw == "null" {
		return -1, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 || n > 5 {
		return 0, badParam("logprobs", "logprobs must be a number from 0 to 5")
	}
	if r.Echo {
		return 0, badParam("logprobs", "logprobs with echo would need the prompt's log probabilities, which the embedded engine does not compute")
	}
	return n, nil
}

// logitBias checks logit_bias (token id → bias in [-100, 100]) against the
// vocabulary.
func logitBias(m map[string]float64, vocab int) (map[int32]float32, error) {
	if len(m) == 0 {
		return nil, nil
	}
	if len(m) > 1024 {
		return nil, badParam("logit_bias", "logit_bias has %d entries; at most 1024", len(m))
	}
	out := make(map[int32]float32, len(m))
	for k, v := range m {
		id, err := strconv.Atoi(k)
		if err != nil || id < 0 || id >= vocab {
			return nil, badParam("logit_bias", "logit_bias key %q is not a token id of this model (0 to %d)", k, vocab-1)
		}
		if math.IsNaN(v) || v < -100 || v > 100 {
			return nil, badParam("logit_bias", "logit_bias for token %d must be between -100 and 100", id)
		}
		out[int32(id)] = float32(v)
	}
	return out, nil
}
