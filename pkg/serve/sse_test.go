package serve

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func newTestStream(body string) *sseStream {
	ctx, cancel := context.WithCancel(context.Background())
	rc := io.NopCloser(strings.NewReader(body))
	return &sseStream{backend: "t", ctx: ctx, cancel: cancel, body: rc, rd: bufio.NewReaderSize(rc, 16)}
}

func drain(s *sseStream) ([]string, error) {
	var out []string
	for {
		ev, err := s.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, string(ev))
	}
}

func TestSSEStream(t *testing.T) {
	long := strings.Repeat("x", 100) // longer than the 16-byte test buffer
	s := newTestStream(": comment\r\n\r\nevent: message\r\ndata: {\"a\":1}\r\n\r\ndata:" + long + "\n\ndata: one\ndata: two\n\n" +
		`data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}` + "\n\ndata: [DONE]\n\ndata: after\n\n")
	got, err := drain(s)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"a":1}`, long, "one\ntwo", `{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events %q", got)
	}
	if u := s.Usage(); u == nil || u.PromptTokens != 3 || u.CompletionTokens != 4 {
		t.Fatalf("usage %+v", u)
	}
}

func TestSSEStreamCutIsAnError(t *testing.T) {
	_, err := drain(newTestStream("data: a\n\ndata: b\n\n"))
	var be *BackendError
	if !errors.As(err, &be) || be.Reason != ReasonStream {
		t.Fatalf("a stream without [DONE] must end in a stream error, got %v", err)
	}
	got, _ := drain(newTestStream("data: a\n\ndata: half"))
	if len(got) != 2 {
		t.Fatalf("last event without its blank line: %q", got)
	}
}

// FuzzSSEStream: the upstream SSE reader never panics or loops forever, and
// ends with io.EOF only after [DONE].
func FuzzSSEStream(f *testing.F) {
	for _, s := range []string{"data: x\n\ndata: [DONE]\n\n", ": c\r\n\r\ndata:{}\r\n\r\n", "data: a\ndata: b\n\n",
		"data: " + strings.Repeat("y", 40) + "\n\n", "\n\n\n", "data: [DONE]", "event: e\nid: 1\nretry: 5\n\n", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		s := newTestStream(body)
		for n := 0; ; n++ {
			if n > len(body)+2 {
				t.Fatalf("more events than bytes from %q", body)
			}
			_, err := s.Next()
			if errors.Is(err, io.EOF) {
				if !strings.Contains(body, "[DONE]") {
					t.Fatalf("clean end without [DONE] in %q", body)
				}
				return
			}
			if err != nil {
				return
			}
		}
	})
}
