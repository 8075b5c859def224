package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// TestUnsupportedFieldsRefused: every field that would change the answer
// and is not done is a 400 naming it; the values that ask for nothing pass.
func TestUnsupportedFieldsRefused(t *testing.T) {
	b := demo(t)
	chat := `"messages":[{"role":"user","content":"x"}],"max_tokens":1`
	comp := `"prompt":"In the","max_tokens":1`
	for _, tc := range []struct {
		ep    serve.Endpoint
		body  string
		param string // "" = accepted
	}{
		{serve.EndpointCompletions, comp + `,"suffix":"amen"`, "suffix"},
		{serve.EndpointCompletions, comp + `,"best_of":3`, "best_of"},
		{serve.EndpointCompletions, comp + `,"logprobs":2`, "logprobs"},
		{serve.EndpointChat, chat + `,"logprobs":true`, "logprobs"},
		{serve.EndpointChat, chat + `,"logprobs":true,"top_logprobs":3`, "logprobs"},
		{serve.EndpointChat, chat + `,"top_logprobs":3`, "top_logprobs"},
		{serve.EndpointChat, chat + `,"functions":[{"name":"f"}]`, "functions"},
		{serve.EndpointChat, chat + `,"function_call":"auto"`, "function_call"},
		{serve.EndpointChat, chat + `,"echo":true`, "echo"},
		{serve.EndpointCompletions, `"prompt":["a","b"],"echo":true`, "echo"},
		{serve.EndpointCompletions, comp + `,"tools":[]`, "tools"},
		{serve.EndpointChat, chat + `,"logit_bias":{"abc":1}`, "logit_bias"},
		{serve.EndpointChat, chat + `,"logit_bias":{"99999":1}`, "logit_bias"},
		{serve.EndpointChat, chat + `,"logit_bias":{"5":101}`, "logit_bias"},
		{serve.EndpointChat, chat + `,"n":3`, "n"},
		{serve.EndpointCompletions, comp + `,"suffix":"","best_of":1,"logprobs":0,"echo":false`, ""},
		{serve.EndpointChat, chat + `,"logprobs":false,"top_logprobs":null,"n":1,"logit_bias":{}`, ""},
	} {
		_, err := b.Do(context.Background(), &serve.Request{Endpoint: tc.ep, Body: []byte("{" + tc.body + "}")})
		if tc.param == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.body, err)
			}
			continue
		}
		var re *engine.RequestError
		if !errors.As(err, &re) || re.Status != 400 || re.Param != tc.param {
			t.Errorf("%s: got %v, want a 400 on %s", tc.body, err, tc.param)
		}
	}
}

// TestLogitBias: -100 bans the greedy answer's first token; +100 on a
// token makes greedy decoding choose it.
func TestLogitBias(t *testing.T) {
	b := demo(t)
	tok := b.Tokenizer()
	base := do(t, b, serve.EndpointCompletions, `{"prompt":"In the beginning","max_tokens":4,"temperature":0}`).Choices[0].Text
	// Ban every token the answer could start with.
	var bans []string
	for id := range tok.VocabSize() {
		if p := tok.Piece(int32(id), false); len(p) > 0 && strings.HasPrefix(base, string(p)) {
			bans = append(bans, fmt.Sprintf(`"%d":-100`, id))
		}
	}
	banned := do(t, b, serve.EndpointCompletions, `{"prompt":"In the beginning","max_tokens":4,"temperature":0,"logit_bias":{`+strings.Join(bans, ",")+`}}`).Choices[0].Text
	if len(bans) == 0 || banned == base {
		t.Fatalf("banning %d tokens left the answer %q", len(bans), banned)
	}
	ids := tok.Encode("the sea", false, false)
	forced := ids[len(ids)-1]
	piece := strings.TrimSpace(string(tok.Piece(forced, false)))
	got := do(t, b, serve.EndpointCompletions, fmt.Sprintf(`{"prompt":"In the beginning","max_tokens":3,"temperature":0,"logit_bias":{"%d":100}}`, forced)).Choices[0].Text
	if piece == "" || !strings.Contains(got, piece) {
		t.Fatalf("forced token %d (%q) missing from %q", forced, piece, got)
	}
}

// TestEcho: completions echo returns the prompt before the answer, stream
// and not, with the same usage.
func TestEcho(t *testing.T) {
	b := demo(t)
	plain := do(t, b, serve.EndpointCompletions, `{"prompt":"In the beginning","max_tokens":4,"temperature":0}`)
	echo := do(t, b, serve.EndpointCompletions, `{"prompt":"In the beginning","max_tokens":4,"temperature":0,"echo":true}`)
	if echo.Choices[0].Text != "In the beginning"+plain.Choices[0].Text || echo.Usage != plain.Usage {
		t.Fatalf("echo %q %+v, plain %q %+v", echo.Choices[0].Text, echo.Usage, plain.Choices[0].Text, plain.Usage)
	}
	text, _, _ := streamText(t, context.Background(), b, serve.EndpointCompletions, `{"prompt":"In the beginning","max_tokens":4,"temperature":0,"echo":true}`)
	if text != echo.Choices[0].Text {
		t.Fatalf("stream %q, plain %q", text, echo.Choices[0].Text)
	}
}
