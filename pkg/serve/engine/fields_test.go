package engine_test

import (
	"context"
	"encoding/json"
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
		{serve.EndpointCompletions, comp + `,"logprobs":9`, "logprobs"},
		{serve.EndpointCompletions, comp + `,"logprobs":2,"echo":true`, "logprobs"},
		{serve.EndpointCompletions, comp + `,"top_logprobs":2`, "top_logprobs"},
		{serve.EndpointChat, chat + `,"logprobs":3`, "logprobs"},
		{serve.EndpointChat, chat + `,"logprobs":true,"top_logprobs":30`, "top_logprobs"},
		{serve.EndpointChat, chat + `,"top_logprobs":3`, "top_logprobs"},
		{serve.EndpointChat, chat + `,"logprobs":true,"top_logprobs":3`, ""},
		{serve.EndpointCompletions, comp + `,"logprobs":2`, ""},
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

// TestLogprobs: greedy answers carry one entry per generated token whose
// bytes make up the text, the chosen token first among top_logprobs, the
// same stream and not; completions carry tokens, offsets and top maps.
func TestLogprobs(t *testing.T) {
	b := demo(t)
	type entry struct {
		Token       string  `json:"token"`
		Logprob     float64 `json:"logprob"`
		Bytes       []byte  `json:"bytes"`
		TopLogprobs []struct {
			Token   string  `json:"token"`
			Logprob float64 `json:"logprob"`
		} `json:"top_logprobs"`
	}
	body := `{"messages":[{"role":"user","content":"In the beginning"}],"max_tokens":6,"temperature":0,"logprobs":true,"top_logprobs":3}`
	resp, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointChat, Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Choices []struct {
			Message  struct{ Content string }
			Logprobs struct{ Content []entry }
		}
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	if err := json.Unmarshal(resp.Body, &a); err != nil {
		t.Fatal(err)
	}
	entries := a.Choices[0].Logprobs.Content
	var joined []byte
	for _, e := range entries {
		joined = append(joined, e.Bytes...)
		if e.Logprob > 0 || len(e.TopLogprobs) != 3 || e.TopLogprobs[0].Token != e.Token || e.TopLogprobs[0].Logprob != e.Logprob ||
			e.TopLogprobs[1].Logprob > e.TopLogprobs[0].Logprob {
			t.Fatalf("entry %+v", e)
		}
	}
	if len(entries) != a.Usage.CompletionTokens || string(joined) != a.Choices[0].Message.Content {
		t.Fatalf("%d entries for %d tokens; bytes %q, content %q", len(entries), a.Usage.CompletionTokens, joined, a.Choices[0].Message.Content)
	}
	// Streamed: the same entries across the chunks.
	sr, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointChat, Body: []byte(body), Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Events.Close()
	var streamed []entry
	for {
		data, err := sr.Events.Next()
		if err != nil {
			break
		}
		var c struct {
			Choices []struct{ Logprobs *struct{ Content []entry } }
		}
		_ = json.Unmarshal(data, &c)
		for _, ch := range c.Choices {
			if ch.Logprobs != nil {
				streamed = append(streamed, ch.Logprobs.Content...)
			}
		}
	}
	if fmt.Sprint(streamed) != fmt.Sprint(entries) {
		t.Fatalf("stream %v\nplain %v", streamed, entries)
	}

	cresp, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointCompletions, Body: []byte(`{"prompt":"In the beginning","max_tokens":5,"temperature":0,"logprobs":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	var ca struct {
		Choices []struct {
			Text     string
			Logprobs struct {
				Tokens        []string             `json:"tokens"`
				TokenLogprobs []float64            `json:"token_logprobs"`
				TopLogprobs   []map[string]float64 `json:"top_logprobs"`
				TextOffset    []int                `json:"text_offset"`
			}
		}
	}
	if err := json.Unmarshal(cresp.Body, &ca); err != nil {
		t.Fatal(err)
	}
	lp := ca.Choices[0].Logprobs
	if strings.Join(lp.Tokens, "") != ca.Choices[0].Text || len(lp.TokenLogprobs) != len(lp.Tokens) || len(lp.TopLogprobs) != len(lp.Tokens) ||
		len(lp.TextOffset) != len(lp.Tokens) || lp.TextOffset[0] != 0 || len(lp.TopLogprobs[0]) == 0 {
		t.Fatalf("completions logprobs %+v for %q", lp, ca.Choices[0].Text)
	}
}
