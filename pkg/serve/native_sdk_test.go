package serve_test

import (
	"context"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

// The official clients read passed-through answers and streams, cut ones
// included (their sequence numbers continue across the gateway's error
// event).
func TestNativeThroughSDKs(t *testing.T) {
	f, _, _, _ := nativeFixture(t)
	ctx := context.Background()
	oc := responsesClient(f, "good")
	r, err := oc.Responses.New(ctx, responses.ResponseNewParams{Model: "nat", Input: textInput("hi"), MaxOutputTokens: openai.Int(50)})
	if err != nil || r.ID != "resp_native" || r.OutputText() != "native" || r.Usage.InputTokens != 11 {
		t.Fatalf("%+v %v", r, err)
	}
	st := collect(t, oc.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "nat", Input: textInput("hi")}))
	if st.text.String() != "native" || st.final.Usage.OutputTokens != 3 {
		t.Fatalf("stream %v %q", st.types, st.text.String())
	}
	st = collect(t, oc.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "nat", Input: textInput("hi cut")}))
	if st.errEvent == nil || st.text.String() != "nati" {
		t.Fatalf("cut stream %v %q", st.types, st.text.String())
	}

	ac := anthropic.NewClient(aoption.WithBaseURL(f.srv.URL), aoption.WithAPIKey("good"), aoption.WithMaxRetries(0))
	params := anthropic.MessageNewParams{Model: "nat", MaxTokens: 50,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}
	m, err := ac.Messages.New(ctx, params)
	if err != nil || m.ID != "msg_native" || m.Content[0].Text != "native" || m.Usage.CacheReadInputTokens != 2 {
		t.Fatalf("%+v %v", m, err)
	}
	s := ac.Messages.NewStreaming(ctx, params)
	var acc anthropic.Message
	for s.Next() {
		if err := acc.Accumulate(s.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if s.Err() != nil || acc.Content[0].Text != "native" || acc.Usage.OutputTokens != 3 || acc.StopReason != "end_turn" {
		t.Fatalf("stream %+v %v", acc, s.Err())
	}
	params.Messages = []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi cut"))}
	s = ac.Messages.NewStreaming(ctx, params)
	for s.Next() {
	}
	if s.Err() == nil {
		t.Fatal("a cut Messages stream read as complete")
	}
}
