// Package responses serves OpenAI's Responses API (POST /v1/responses) by
// translation to chat completions (package protocol has the seam): the
// request becomes one chat request, the chat answer or stream becomes a
// response object or the Responses stream's typed events. Responses are
// never stored, so previous_response_id is refused (docs/protocols.md).
package responses

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/llmctl/llmctl/pkg/serve/apierror"
	"github.com/llmctl/llmctl/pkg/serve/protocol"
)

// Path is the route this package serves.
const Path = "/v1/responses"

// Adapter is the Responses protocol for the gateway.
type Adapter struct{}

// Route is the metrics and access-log label.
func (Adapter) Route() string { return "responses" }

// Paths served.
func (Adapter) Paths() []string { return []string{Path} }

// APIKey is the bearer key, as on every OpenAI route.
func (Adapter) APIKey(h http.Header) string { return protocol.BearerKey(h) }

// New begins one exchange with a fresh response id.
func (Adapter) New(string) protocol.Exchange {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return newExchange(hex.EncodeToString(b[:]))
}

// exchange is one request: what it echoes, and the stream's progress.
type exchange struct {
	id   string // the random part of every id of this response
	echo *echo
	st   streamState
}

func newExchange(id string) *exchange {
	return &exchange{id: id, st: streamState{msg: -1, call: -1, calls: map[int]int{}}}
}

// Decode turns the Responses request into a chat completions request.
func (x *exchange) Decode(body []byte) (*protocol.Request, *apierror.Error) {
	cr, ec, aerr := decode(body)
	if aerr != nil {
		return nil, aerr
	}
	x.echo = ec
	b, err := json.Marshal(cr)
	if err != nil {
		return nil, bad("", "cannot encode the request: %v", err)
	}
	return &protocol.Request{Chat: b}, nil
}

// The answer's shapes, in the order OpenAI documents their fields.
type response struct {
	ID                 string          `json:"id"`
	Object             string          `json:"object"`
	CreatedAt          int64           `json:"created_at"`
	Status             string          `json:"status"`
	Error              json.RawMessage `json:"error"`
	IncompleteDetails  *incomplete     `json:"incomplete_details"`
	Instructions       *string         `json:"instructions"`
	MaxOutputTokens    *int64          `json:"max_output_tokens"`
	Model              string          `json:"model"`
	Output             []outputItem    `json:"output"`
	ParallelToolCalls  bool            `json:"parallel_tool_calls"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Reasoning          reasoning       `json:"reasoning"`
	Store              bool            `json:"store"`
	Temperature        *float64        `json:"temperature"`
	Text               json.RawMessage `json:"text"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	Tools              json.RawMessage `json:"tools"`
	TopP               *float64        `json:"top_p"`
	Truncation         string          `json:"truncation"`
	Usage              *usage          `json:"usage"`
	User               *string         `json:"user"`
	Metadata           json.RawMessage `json:"metadata"`
}

type incomplete struct {
	Reason string `json:"reason"`
}

type reasoning struct {
	Effort  *string `json:"effort"`
	Summary *string `json:"summary"`
}

type outputItem struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Status string `json:"status"`
	// A message's.
	Role    string        `json:"role,omitempty"`
	Content *[]outputText `json:"content,omitempty"`
	// A function call's.
	CallID    string  `json:"call_id,omitempty"`
	Name      string  `json:"name,omitempty"`
	Arguments *string `json:"arguments,omitempty"`
}

type outputText struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
	Logprobs    []any  `json:"logprobs"`
}

type usage struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
}

// chatUsage is chat completions' usage object.
type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

func (u *chatUsage) toResponses() *usage {
	if u == nil {
		return nil
	}
	out := &usage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
	if out.TotalTokens == 0 {
		out.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	if u.PromptTokensDetails != nil {
		out.InputTokensDetails.CachedTokens = u.PromptTokensDetails.CachedTokens
	}
	if u.CompletionTokensDetails != nil {
		out.OutputTokensDetails.ReasoningTokens = u.CompletionTokensDetails.ReasoningTokens
	}
	return out
}

// chatTerms are the chat fields the gateway's errors may name, and what
// this protocol calls them.
var chatTerms = strings.NewReplacer("max_completion_tokens", "max_output_tokens", "max_tokens", "max_output_tokens", " (or n)", "")

// userTerms renames, in an OpenAI error, the chat fields the gateway or the
// backend named (a 402 or 400 about max_tokens, a backend refusing
// messages) to the fields the client sent.
func userTerms(body []byte) []byte {
	var e map[string]map[string]any
	if json.Unmarshal(body, &e) != nil || e["error"] == nil {
		return body
	}
	in := e["error"]
	if msg, ok := in["message"].(string); ok {
		in["message"] = chatTerms.Replace(msg)
	}
	if p, ok := in["param"].(string); ok {
		switch {
		case p == "messages" || strings.HasPrefix(p, "messages["):
			in["param"] = "input"
		default:
			in["param"] = chatTerms.Replace(p)
		}
	}
	out, err := json.Marshal(e)
	if err != nil {
		return body
	}
	return out
}

// chatAnswer is the part of a chat.completion the translation reads.
type chatAnswer struct {
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content   *string        `json:"content"`
			ToolCalls []chatToolCall `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *chatUsage `json:"usage"`
}

func (x *exchange) msgID() string { return "msg_" + x.id }

func (x *exchange) callID(n int) string { return fmt.Sprintf("fc_%s_%d", x.id, n) }

// response is the response object with the request's echo, no output yet.
func (x *exchange) response(created int64, model, status string) *response {
	r := &response{ID: "resp_" + x.id, Object: "response", CreatedAt: created, Status: status, Error: json.RawMessage("null"),
		Model: model, Output: []outputItem{}, ParallelToolCalls: true, Truncation: "disabled",
		Text: json.RawMessage(`{"format":{"type":"text"}}`), ToolChoice: json.RawMessage(`"auto"`),
		Tools: json.RawMessage(`[]`), Metadata: json.RawMessage(`{}`)}
	ec := x.echo
	if ec == nil {
		return r
	}
	r.Instructions, r.MaxOutputTokens, r.Temperature, r.TopP = ec.Instructions, ec.MaxOutputTokens, ec.Temperature, ec.TopP
	if ec.ParallelToolCalls != nil {
		r.ParallelToolCalls = *ec.ParallelToolCalls
	}
	if ec.Text != nil {
		r.Text = ec.Text
	}
	if ec.ToolChoice != nil {
		r.ToolChoice = ec.ToolChoice
	}
	if ec.Tools != nil {
		r.Tools = ec.Tools
	}
	if ec.Metadata != nil {
		r.Metadata = ec.Metadata
	}
	if ec.User != "" {
		r.User = &ec.User
	}
	if ec.ReasoningEffort != "" {
		r.Reasoning.Effort = &ec.ReasoningEffort
	}
	if r.Model == "" {
		r.Model = ec.Model
	}
	return r
}

// finish sets the final status from chat's finish_reason.
func (r *response) finish(reason string) {
	r.Status = "completed"
	switch reason {
	case "length":
		r.Status, r.IncompleteDetails = "incomplete", &incomplete{Reason: "max_output_tokens"}
	case "content_filter":
		r.Status, r.IncompleteDetails = "incomplete", &incomplete{Reason: "content_filter"}
	}
}

func messageItem(id, text, status string) outputItem {
	content := []outputText{}
	if status == "completed" {
		content = append(content, textPart(text))
	}
	return outputItem{Type: "message", ID: id, Status: status, Role: "assistant", Content: &content}
}

func textPart(text string) outputText {
	return outputText{Type: "output_text", Text: text, Annotations: []any{}, Logprobs: []any{}}
}

func callItem(id string, tc chatToolCall, status string) outputItem {
	args := tc.Function.Arguments
	return outputItem{Type: "function_call", ID: id, Status: status, CallID: tc.ID, Name: tc.Function.Name, Arguments: &args}
}

// JSON translates a whole chat answer into a response object. Errors are
// already in OpenAI's shape, which is the Responses API's too.
func (x *exchange) JSON(status int, body []byte) (int, string, []byte) {
	if status != http.StatusOK {
		return status, "application/json", userTerms(body)
	}
	var ca chatAnswer
	if err := json.Unmarshal(body, &ca); err != nil || len(ca.Choices) == 0 {
		e := &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeServer, Code: "backend_error",
			Message: "the backend's answer could not be read as a chat completion"}
		return e.Status, "application/json", e.Body()
	}
	c := ca.Choices[0]
	r := x.response(ca.Created, ca.Model, "completed")
	if c.Message.Content != nil && *c.Message.Content != "" {
		r.Output = append(r.Output, messageItem(x.msgID(), *c.Message.Content, "completed"))
	}
	for i, tc := range c.Message.ToolCalls {
		r.Output = append(r.Output, callItem(x.callID(i), tc, "completed"))
	}
	r.finish(c.FinishReason)
	r.Usage = ca.Usage.toResponses()
	b, err := json.Marshal(r)
	if err != nil {
		e := &apierror.Error{Status: http.StatusInternalServerError, Type: apierror.TypeServer, Code: "internal_error",
			Message: "the response could not be encoded"}
		return e.Status, "application/json", e.Body()
	}
	return http.StatusOK, "application/json", b
}

// streamState is the stream's progress: the output so far (open items
// included) and which item is open.
type streamState struct {
	started bool
	seq     int64
	created int64
	model   string
	out     []outputItem
	msg     int // output index of the open message, -1 when none
	text    strings.Builder
	call    int // output index of the open function call, -1 when none
	args    strings.Builder
	calls   map[int]int // chat tool call index → output index
	finish  string
	usage   *chatUsage
}

// event is one Responses stream event; each type fills its own fields.
type event struct {
	Type           string      `json:"type"`
	Response       *response   `json:"response,omitempty"`
	OutputIndex    *int        `json:"output_index,omitempty"`
	ItemID         string      `json:"item_id,omitempty"`
	ContentIndex   *int        `json:"content_index,omitempty"`
	Item           *outputItem `json:"item,omitempty"`
	Part           *outputText `json:"part,omitempty"`
	Delta          *string     `json:"delta,omitempty"`
	Text           *string     `json:"text,omitempty"`
	Name           string      `json:"name,omitempty"`
	Arguments      *string     `json:"arguments,omitempty"`
	Logprobs       *[]any      `json:"logprobs,omitempty"`
	SequenceNumber int64       `json:"sequence_number"`
}

func ptr[T any](v T) *T { return &v }

// emit frames ev with the next sequence number.
func (x *exchange) emit(out []byte, ev event) []byte {
	ev.SequenceNumber = x.st.seq
	x.st.seq++
	b, err := json.Marshal(ev)
	if err != nil {
		return out // every field is plain data; cannot happen
	}
	return append(out, protocol.SSE(ev.Type, b)...)
}

// chatChunk is the part of a chat.completion.chunk the translation reads.
type chatChunk struct {
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Content   string `json:"content"`
			ToolCalls []struct {
				Index    int    `json:"index"`
				ID       string `json:"id"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *chatUsage `json:"usage"`
}

// start opens the stream: response.created, response.in_progress.
func (x *exchange) start(out []byte) []byte {
	if x.st.started {
		return out
	}
	x.st.started = true
	out = x.emit(out, event{Type: "response.created", Response: x.response(x.st.created, x.st.model, "in_progress")})
	return x.emit(out, event{Type: "response.in_progress", Response: x.response(x.st.created, x.st.model, "in_progress")})
}

// Chunk translates one chat stream event.
func (x *exchange) Chunk(data []byte) []byte {
	var c chatChunk
	if json.Unmarshal(data, &c) != nil {
		return nil // not a chunk we can read; the usage and [DONE] still come
	}
	if !x.st.started {
		x.st.created, x.st.model = c.Created, c.Model
	}
	out := x.start(nil)
	if c.Usage != nil {
		x.st.usage = c.Usage
	}
	if len(c.Choices) == 0 {
		return out
	}
	ch := c.Choices[0]
	if ch.Delta.Content != "" {
		out = x.closeCall(out)
		if x.st.msg < 0 {
			x.st.msg = len(x.st.out)
			x.st.out = append(x.st.out, messageItem(x.msgID(), "", "in_progress"))
			out = x.emit(out, event{Type: "response.output_item.added", OutputIndex: ptr(x.st.msg), Item: ptr(x.st.out[x.st.msg])})
			out = x.emit(out, event{Type: "response.content_part.added", ItemID: x.msgID(), OutputIndex: ptr(x.st.msg),
				ContentIndex: ptr(0), Part: ptr(textPart(""))})
		}
		x.st.text.WriteString(ch.Delta.Content)
		out = x.emit(out, event{Type: "response.output_text.delta", ItemID: x.msgID(), OutputIndex: ptr(x.st.msg),
			ContentIndex: ptr(0), Delta: ptr(ch.Delta.Content), Logprobs: &[]any{}})
	}
	for _, tc := range ch.Delta.ToolCalls {
		idx, seen := x.st.calls[tc.Index]
		if !seen {
			out = x.closeMessage(out)
			out = x.closeCall(out)
			idx = len(x.st.out)
			x.st.calls[tc.Index] = idx
			x.st.call = idx
			x.st.args.Reset()
			item := callItem(x.callID(len(x.st.calls)-1), chatToolCall{ID: tc.ID, Function: chatFunction{Name: tc.Function.Name}}, "in_progress")
			x.st.out = append(x.st.out, item)
			out = x.emit(out, event{Type: "response.output_item.added", OutputIndex: ptr(idx), Item: ptr(item)})
		}
		if idx != x.st.call {
			continue // a late fragment of a call already closed: cannot be sent in order
		}
		if tc.Function.Arguments != "" {
			x.st.args.WriteString(tc.Function.Arguments)
			out = x.emit(out, event{Type: "response.function_call_arguments.delta", ItemID: x.st.out[idx].ID,
				OutputIndex: ptr(idx), Delta: ptr(tc.Function.Arguments)})
		}
	}
	if ch.FinishReason != nil && *ch.FinishReason != "" {
		x.st.finish = *ch.FinishReason
		out = x.closeMessage(out)
		out = x.closeCall(out)
	}
	return out
}

// closeMessage ends the open message item.
func (x *exchange) closeMessage(out []byte) []byte {
	i := x.st.msg
	if i < 0 {
		return out
	}
	x.st.msg = -1
	text := x.st.text.String()
	out = x.emit(out, event{Type: "response.output_text.done", ItemID: x.msgID(), OutputIndex: ptr(i), ContentIndex: ptr(0),
		Text: ptr(text), Logprobs: &[]any{}})
	out = x.emit(out, event{Type: "response.content_part.done", ItemID: x.msgID(), OutputIndex: ptr(i), ContentIndex: ptr(0),
		Part: ptr(textPart(text))})
	x.st.out[i] = messageItem(x.msgID(), text, "completed")
	return x.emit(out, event{Type: "response.output_item.done", OutputIndex: ptr(i), Item: ptr(x.st.out[i])})
}

// closeCall ends the open function call item.
func (x *exchange) closeCall(out []byte) []byte {
	i := x.st.call
	if i < 0 {
		return out
	}
	x.st.call = -1
	args := x.st.args.String()
	item := &x.st.out[i]
	item.Status, item.Arguments = "completed", &args
	out = x.emit(out, event{Type: "response.function_call_arguments.done", ItemID: item.ID, OutputIndex: ptr(i),
		Name: item.Name, Arguments: ptr(args)})
	return x.emit(out, event{Type: "response.output_item.done", OutputIndex: ptr(i), Item: ptr(*item)})
}

// Done ends the stream: open items close, then response.completed (or
// response.incomplete) with the whole output and the usage.
func (x *exchange) Done() []byte {
	out := x.start(nil)
	out = x.closeMessage(out)
	out = x.closeCall(out)
	r := x.response(x.st.created, x.st.model, "completed")
	r.Output = append(r.Output, x.st.out...)
	r.finish(x.st.finish)
	r.Usage = x.st.usage.toResponses()
	typ := "response.completed"
	if r.Status == "incomplete" {
		typ = "response.incomplete"
	}
	return x.emit(out, event{Type: typ, Response: r})
}

// errorEvent is the Responses stream's error event.
type errorEvent struct {
	Type           string  `json:"type"`
	Code           *string `json:"code"`
	Message        string  `json:"message"`
	Param          *string `json:"param"`
	SequenceNumber int64   `json:"sequence_number"`
}

// StreamError ends a broken stream with an error event.
func (x *exchange) StreamError(body []byte) []byte {
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    *string `json:"code"`
			Param   *string `json:"param"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	ev := errorEvent{Type: "error", Code: e.Error.Code, Message: e.Error.Message, Param: e.Error.Param, SequenceNumber: x.st.seq}
	if ev.Message == "" {
		ev.Message = "the stream ended before the response was complete"
	}
	if ev.Code == nil {
		code := e.Error.Type
		if code == "" {
			code = "stream_interrupted"
		}
		ev.Code = &code
	}
	x.st.seq++
	b, err := json.Marshal(ev)
	if err != nil {
		return nil
	}
	return protocol.SSE("error", b)
}
