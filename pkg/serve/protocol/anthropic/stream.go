package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// StreamWriter translates the chat completions SSE stream the gateway
// writes ("data: {chunk}\n\n" … "data: [DONE]\n\n", or a "data: {"error":…}"
// event when the stream broke) into Anthropic's stream: message_start,
// ping, content_block_start / content_block_delta (text_delta,
// input_json_delta) / content_block_stop per block, message_delta with
// stop_reason and usage, message_stop; or an error event.
//
// It is an io.Writer so the gateway's chat stream path, which counts and
// settles what it writes, runs unchanged in front of it.
type StreamWriter struct {
	w       io.Writer
	req     *Request
	id      string
	inputEs int64 // the gateway's prompt estimate, for message_start

	pending []byte // bytes of an unfinished SSE event
	started bool
	ended   bool // message_stop or error written

	next      int    // index of the next block
	open      int    // index of the open block, -1 when none
	openKind  string // "text" or "tool_use"
	tools     map[int]int
	finish    string
	stopStr   json.RawMessage
	usage     *chatUsage
	delivered int64 // content events passed on, the output count without usage
	sawTool   bool
}

// NewStreamWriter writes the translated stream of req to w. id is the
// message id; inputEstimate is the prompt size the gateway estimated, sent
// in message_start (the exact count follows in message_delta).
func NewStreamWriter(w io.Writer, req *Request, id string, inputEstimate int64) *StreamWriter {
	return &StreamWriter{w: w, req: req, id: id, inputEs: inputEstimate, open: -1, tools: map[int]int{}}
}

// Write takes chat SSE bytes, in any split.
func (s *StreamWriter) Write(p []byte) (int, error) {
	s.pending = append(s.pending, p...)
	for {
		i := bytes.Index(s.pending, []byte("\n\n"))
		if i < 0 {
			break
		}
		ev := s.pending[:i]
		rest := s.pending[i+2:]
		if err := s.event(ev); err != nil {
			return 0, err
		}
		s.pending = append(s.pending[:0], rest...)
	}
	return len(p), nil
}

// Ended reports whether the stream was finished (message_stop) or failed
// (error event): a stream that is not ended when the chat path returns was
// cut, and the caller ends it with Fail.
func (s *StreamWriter) Ended() bool { return s.ended }

type chatChunk struct {
	Choices []struct {
		Delta struct {
			Content   string        `json:"content"`
			ToolCalls []toolCallOut `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string         `json:"finish_reason"`
		StopReason   json.RawMessage `json:"stop_reason"`
	} `json:"choices"`
	Usage *chatUsage      `json:"usage"`
	Error json.RawMessage `json:"error"`
}

func (s *StreamWriter) event(ev []byte) error {
	var data []byte
	for _, line := range bytes.Split(ev, []byte("\n")) {
		if d, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			data = append(data, bytes.TrimPrefix(d, []byte(" "))...)
		}
	}
	if len(data) == 0 || s.ended {
		return nil
	}
	if bytes.Equal(data, []byte("[DONE]")) {
		return s.done()
	}
	return s.chunk(data)
}

// chunk translates one chat chunk (or an {"error":…} event).
func (s *StreamWriter) chunk(data []byte) error {
	if s.ended {
		return nil
	}
	var c chatChunk
	if err := json.Unmarshal(data, &c); err != nil {
		return s.Fail(ErrAPI, "the backend sent a stream event that is not JSON")
	}
	if len(c.Error) > 0 && !isNull(c.Error) {
		return s.Fail(ErrAPI, openAIMessage(http.StatusBadGateway, data))
	}
	if err := s.start(); err != nil {
		return err
	}
	if c.Usage != nil {
		s.usage = c.Usage
	}
	if len(c.Choices) == 0 {
		return nil
	}
	ch := c.Choices[0]
	if ch.Delta.Content != "" {
		s.delivered++
		if s.openKind != "text" {
			empty := ""
			if err := s.openBlock("text", ContentBlock{Type: "text", Text: &empty}); err != nil {
				return err
			}
		}
		if err := s.send("content_block_delta", blockDelta{"content_block_delta", s.open,
			delta{Type: "text_delta", Text: &ch.Delta.Content}}); err != nil {
			return err
		}
	}
	for _, tc := range ch.Delta.ToolCalls {
		s.delivered++
		s.sawTool = true
		idx, ok := s.tools[tc.Index]
		if !ok {
			if err := s.openBlock("tool_use", ContentBlock{Type: "tool_use", ID: toolUseID(tc.ID),
				Name: tc.Function.Name, Input: json.RawMessage("{}")}); err != nil {
				return err
			}
			idx = s.open
			s.tools[tc.Index] = idx
		}
		if tc.Function.Arguments != "" {
			// A backend interleaving parallel calls sends a delta for a block
			// already closed; it keeps its index, as clients accumulate by index.
			if err := s.send("content_block_delta", blockDelta{"content_block_delta", idx,
				delta{Type: "input_json_delta", PartialJSON: &tc.Function.Arguments}}); err != nil {
				return err
			}
		}
	}
	if ch.FinishReason != nil && *ch.FinishReason != "" {
		s.finish, s.stopStr = *ch.FinishReason, ch.StopReason
	}
	return nil
}

func (s *StreamWriter) start() error {
	if s.started {
		return nil
	}
	s.started = true
	msg := Message{ID: s.id, Type: "message", Role: "assistant", Model: s.req.Model,
		Content: []ContentBlock{}, Usage: Usage{InputTokens: s.inputEs}}
	if err := s.send("message_start", struct {
		Type    string  `json:"type"`
		Message Message `json:"message"`
	}{"message_start", msg}); err != nil {
		return err
	}
	return s.send("ping", typeOnly{"ping"})
}

func (s *StreamWriter) openBlock(kind string, block ContentBlock) error {
	if err := s.closeBlock(); err != nil {
		return err
	}
	s.open, s.openKind = s.next, kind
	s.next++
	return s.send("content_block_start", struct {
		Type         string       `json:"type"`
		Index        int          `json:"index"`
		ContentBlock ContentBlock `json:"content_block"`
	}{"content_block_start", s.open, block})
}

func (s *StreamWriter) closeBlock() error {
	if s.open < 0 {
		return nil
	}
	i := s.open
	s.open, s.openKind = -1, ""
	return s.send("content_block_stop", struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	}{"content_block_stop", i})
}

func (s *StreamWriter) done() error {
	if s.ended {
		return nil
	}
	if err := s.start(); err != nil {
		return err
	}
	if err := s.closeBlock(); err != nil {
		return err
	}
	reason, seq := stopReason(s.finish, s.stopStr, s.req.StopSequences)
	if s.sawTool && reason == "end_turn" {
		reason = "tool_use"
	}
	u := Usage{InputTokens: s.inputEs, OutputTokens: s.delivered}
	if s.usage != nil {
		u = s.usage.anthropic()
	}
	type stop struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	}
	if err := s.send("message_delta", struct {
		Type  string `json:"type"`
		Delta stop   `json:"delta"`
		Usage Usage  `json:"usage"`
	}{"message_delta", stop{reason, seq}, u}); err != nil {
		return err
	}
	s.ended = true
	return s.send("message_stop", typeOnly{"message_stop"})
}

// Fail ends the stream with an error event (the documented way a Messages
// stream reports a failure after its 200). Open blocks are left as they are:
// the client stops at the error.
func (s *StreamWriter) Fail(errType, message string) error {
	if s.ended {
		return nil
	}
	s.ended = true
	return s.write("error", ErrorBody(errType, message, ""))
}

func (s *StreamWriter) send(event string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", event, err)
	}
	return s.write(event, b)
}

func (s *StreamWriter) write(event string, data []byte) error {
	buf := make([]byte, 0, len(event)+len(data)+16)
	buf = append(append(append(buf, "event: "...), event...), "\ndata: "...)
	buf = append(append(buf, data...), "\n\n"...)
	_, err := s.w.Write(buf)
	return err
}

type typeOnly struct {
	Type string `json:"type"`
}

type blockDelta struct {
	Type  string `json:"type"`
	Index int    `json:"index"`
	Delta delta  `json:"delta"`
}

type delta struct {
	Type        string  `json:"type"`
	Text        *string `json:"text,omitempty"`
	PartialJSON *string `json:"partial_json,omitempty"`
}
