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

// Buffered says whether Next can return the next event without reading
// from upstream: the gateway flushes only when it cannot.
func TestSSEStreamBuffered(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	s := &sseStream{backend: "t", ctx: ctx, cancel: cancel, body: pr, rd: bufio.NewReaderSize(pr, 4096)}
	go func() {
		// One write: two whole events, a keep-alive comment, half an event.
		_, _ = pw.Write([]byte("data: a\n\ndata: b\r\n\r\n: ping\n\ndata: c"))
	}()
	step := func(want string, buffered bool) {
		t.Helper()
		ev, err := s.Next()
		if err != nil || string(ev) != want {
			t.Fatalf("Next = %q, %v; want %q", ev, err, want)
		}
		if got := s.Buffered(); got != buffered {
			t.Fatalf("after %q: Buffered = %v, want %v", want, got, buffered)
		}
	}
	step("a", true)  // "b" is complete in memory
	step("b", false) // only a comment and half of "c": Next would wait
	go func() { _, _ = pw.Write([]byte("\n\ndata: [DONE]\n\n")); pw.Close() }()
	step("c", true) // [DONE] is whole: Next returns io.EOF without waiting
	if _, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("want io.EOF, got %v", err)
	}
	if s.Buffered() {
		t.Fatal("Buffered after the end")
	}
}
