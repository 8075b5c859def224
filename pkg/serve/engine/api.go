package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine/sample"
	"github.com/llmctl/llmctl/pkg/serve/engine/toolcall"
)

// RequestError is a request the engine refuses (bad parameters, prompt too
// long). Status is the HTTP status to answer and Body the OpenAI-shaped
// error JSON; the gateway passes both to the client unchanged.
type RequestError struct {
	Status  int
	Param   string
	Message string
	// Code is the OpenAI error code, "" for none (null):
	// context_length_exceeded for a prompt the model's context cannot hold,
	// which the gateway's context-window fallback reads.
	Code string
}

func (e *RequestError) Error() string { return "engine: " + e.Message }

// Body renders the OpenAI error object.
func (e *RequestError) Body() []byte {
	var param *string
	if e.Param != "" {
		param = &e.Param
	}
	var code *string
	if e.Code != "" {
		code = &e.Code
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": e.Message, "type": "invalid_request_error", "param": param, "code": code,
	}})
	return b
}

func badParam(param, format string, a ...any) error {
	return &RequestError{Status: http.StatusBadRequest, Param: param, Message: fmt.Sprintf(format, a...)}
}

// codeContextLength is OpenAI's code for a prompt longer than the context.
const codeContextLength = "context_length_exceeded"

// tooLong is badParam for input the model's context cannot hold.
func tooLong(param, format string, a ...any) error {
	return &RequestError{Status: http.StatusBadRequest, Param: param, Message: fmt.Sprintf(format, a...), Code: codeContextLength}
}

// request is the union of the chat/completions and completions fields the
// engine honours.
type request struct {
	Model               string          `json:"model"`
	Messages            []message       `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	TopK                int             `json:"top_k"`
	MinP                float64         `json:"min_p"`
	RepeatPenalty       float64         `json:"repeat_penalty"`
	RepeatLastN         *int            `json:"repeat_last_n"`
	PresencePenalty     float64         `json:"presence_penalty"`
	FrequencyPenalty    float64         `json:"frequency_penalty"`
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N              *int            `json:"n"`
	Tools          json.RawMessage `json:"tools"`
	ResponseFormat json.RawMessage `json:"response_format"`
	ToolChoice     json.RawMessage `json:"tool_choice"`
	// Fields that change the answer and are either done here or refused
	// by name (see checkFields): never silently ignored.
	LogitBias    map[string]float64 `json:"logit_bias"`
	Echo         bool               `json:"echo"`
	Suffix       *string            `json:"suffix"`
	BestOf       *int               `json:"best_of"`
	Logprobs     json.RawMessage    `json:"logprobs"`
	TopLogprobs  *int               `json:"top_logprobs"`
	Functions    json.RawMessage    `json:"functions"`
	FunctionCall json.RawMessage    `json:"function_call"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	raw     json.RawMessage // the whole object, for the chat template
}

func (m *message) UnmarshalJSON(b []byte) error {
	type fields message // without this method
	var f fields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*m = message(f)
	m.raw = append(json.RawMessage(nil), b...)
	return nil
}

// content accepts a string or an array of {"type":"text","text":...} parts.
func (m message) text() (string, error) {
	if len(m.Content) == 0 || string(m.Content) == "null" {
		return "", nil
	}
	if s, ok := jsonString(m.Content); ok {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return "", badParam("messages", "message content must be a string or an array of text parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", badParam("messages", "content part type %q is not supported by the embedded engine", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

func stringOrList(raw json.RawMessage, param string) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if s, ok := jsonString(raw); ok {
		return []string{s}, nil
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, badParam(param, "%s must be a string or an array of strings", param)
	}
	return l, nil
}

// Do serves one request. A refused request is a non-retryable
// *serve.BackendError carrying the 4xx status and OpenAI error body (the
// gateway passes both through); it wraps the *RequestError.
func (b *Backend) Do(ctx context.Context, req *serve.Request) (*serve.Response, error) {
	resp, err := b.do(ctx, req)
	var re *RequestError
	if errors.As(err, &re) {
		return nil, &serve.BackendError{Backend: b.Name(), Status: re.Status, Body: re.Body(), Err: re}
	}
	return resp, err
}

func (b *Backend) do(ctx context.Context, req *serve.Request) (*serve.Response, error) {
	if req.Endpoint == serve.EndpointEmbeddings {
		return b.embed(ctx, req)
	}
	if req.Endpoint != serve.EndpointChat && req.Endpoint != serve.EndpointCompletions {
		return nil, &RequestError{Status: http.StatusNotFound, Message: fmt.Sprintf("the embedded engine does not serve %s", req.Endpoint)}
	}
	var r request
	if err := json.Unmarshal(req.Body, &r); err != nil {
		return nil, badParam("", "invalid JSON body: %v", err)
	}
	j, err := b.newJob(ctx, req.Endpoint, &r)
	if err != nil {
		return nil, err
	}
	if err := b.submit(ctx, j); err != nil {
		return nil, err
	}
	id := req.RequestID
	if id == "" {
		id = fmt.Sprintf("%d", time.Now().UnixNano())
	}
	s := &stream{b: b, j: j, ctx: ctx, endpoint: req.Endpoint, created: time.Now().Unix(), includeUsage: r.StreamOptions != nil && r.StreamOptions.IncludeUsage}
	if r.Echo && req.Endpoint == serve.EndpointCompletions {
		s.echo, _ = jsonString(r.Prompt) // checkFields made sure it is one string
	}
	if req.Endpoint == serve.EndpointChat {
		s.id = "chatcmpl-" + id
	} else {
		s.id = "cmpl-" + id
	}
	if req.Stream || r.Stream {
		return &serve.Response{Events: s}, nil
	}
	return s.collect()
}

func (b *Backend) newJob(ctx context.Context, ep serve.Endpoint, r *request) (*job, error) {
	if r.N != nil && *r.N != 1 {
		return nil, badParam("n", "the embedded engine produces one choice per request (n=1)")
	}
	if err := checkFields(ep, r); err != nil {
		return nil, err
	}
	bias, err := logitBias(r.LogitBias, b.tok.VocabSize())
	if err != nil {
		return nil, err
	}
	nlp, err := logprobsRequest(ep, r)
	if err != nil {
		return nil, err
	}
	var prompt string
	var stops []string
	var tools *tooling
	if ep == serve.EndpointChat {
		if len(r.Messages) == 0 {
			return nil, badParam("messages", "messages must not be empty")
		}
		var err error
		if tools, err = b.setupTools(r); err != nil {
			return nil, err
		}
		if prompt, err = b.chatPrompt(r); err != nil {
			return nil, err
		}
		if b.tmpl == nil {
			stops = b.format.Stops()
		}
	} else {
		ps, err := stringOrList(r.Prompt, "prompt")
		if err != nil {
			return nil, err
		}
		if len(ps) != 1 {
			return nil, badParam("prompt", "the embedded engine takes exactly one prompt string")
		}
		prompt = ps[0]
	}
	user, err := stringOrList(r.Stop, "stop")
	if err != nil {
		return nil, err
	}
	if len(user) > 4 {
		return nil, badParam("stop", "at most 4 stop sequences")
	}
	stops = append(stops, user...)
	// Chat prompts contain the format's control tokens; plain completions
	// are text only.
	param := "prompt"
	if ep == serve.EndpointChat {
		param = "messages"
	}
	ctxSize := b.sched.ctxSize
	toks, err := promptTokens(b.tok, ctxSize, prompt, ep == serve.EndpointChat, param)
	if err != nil {
		return nil, err
	}
	maxTok := ctxSize - len(toks)
	for _, v := range []*int{r.MaxTokens, r.MaxCompletionTokens} {
		if v != nil {
			if *v <= 0 {
				return nil, badParam("max_tokens", "max_tokens must be positive")
			}
			maxTok = min(maxTok, *v)
		}
	}
	p := sample.Params{Temperature: 1, TopK: r.TopK, MinP: r.MinP, RepeatPenalty: r.RepeatPenalty,
		RepeatLastN: 64, PresencePenalty: r.PresencePenalty, FrequencyPenalty: r.FrequencyPenalty}
	if r.Temperature != nil {
		if *r.Temperature < 0 || *r.Temperature > 2 {
			return nil, badParam("temperature", "temperature must be between 0 and 2")
		}
		p.Temperature = *r.Temperature
	}
	if r.TopP != nil {
		if *r.TopP <= 0 || *r.TopP > 1 {
			return nil, badParam("top_p", "top_p must be in (0, 1]")
		}
		p.TopP = *r.TopP
	}
	if r.RepeatLastN != nil {
		p.RepeatLastN = *r.RepeatLastN
	}
	if r.Seed != nil {
		p.Seed = uint64(*r.Seed)
	} else {
		p.Seed = uint64(time.Now().UnixNano())
	}
	g, err := responseGrammar(r.ResponseFormat)
	if err != nil {
		return nil, err
	}
	j := &job{ctx: ctx, prompt: toks, maxTokens: maxTok, stops: stops, sampler: sample.New(p), notify: make(chan struct{}, 1), tools: tools, bias: bias, logprobs: nlp}
	if tools != nil && tools.forced != nil {
		g = tools.forced
	}
	if g != nil {
		st := g.Start()
		j.grammar = &st
	}
	return j, nil
}

// stream turns a job's output into OpenAI chunks; collect builds the
// non-stream answer from the same job.
type stream struct {
	b            *Backend
	j            *job
	ctx          context.Context
	endpoint     serve.Endpoint
	id           string
	created      int64
	includeUsage bool

	started  bool
	finished bool
	queue    [][]byte         // chunks ready to hand out
	calls    *toolcall.Parser // with tools: sorts the answer into content and calls as it comes
	nCalls   int              // calls started so far
	echo     string           // completions echo: the prompt, sent before the answer
	lps      []tokenLogprob   // taken from the job, not yet sent
	lpOffset int              // completions: text_offset of the next token
	usage    *billing.Usage
}

func (s *stream) object() string {
	if s.endpoint == serve.EndpointChat {
		return "chat.completion.chunk"
	}
	return "text_completion"
}

func (s *stream) chunk(delta map[string]any, text string, finish *string) []byte {
	var choice map[string]any
	if s.endpoint == serve.EndpointChat {
		choice = map[string]any{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": nil}
	} else {
		choice = map[string]any{"index": 0, "text": text, "finish_reason": finish, "logprobs": nil}
	}
	if s.j.logprobs >= 0 {
		// Log probabilities ride with the text taken with them (or the
		// next chunk, when the text is held back).
		s.lps = append(s.lps, s.j.takeLogprobs()...)
		if len(s.lps) > 0 && (text != "" || delta["content"] != nil || finish != nil) {
			choice["logprobs"] = s.logprobsJSON(s.lps)
			s.lps = nil
		}
	}
	b, _ := json.Marshal(map[string]any{"id": s.id, "object": s.object(), "created": s.created, "model": s.b.name, "choices": []any{choice}})
	return b
}

func (s *stream) usageValue() *billing.Usage {
	return &billing.Usage{PromptTokens: int64(len(s.j.prompt)), CompletionTokens: int64(s.j.generated())}
}

// Next returns the next chunk: the role, text deltas as they are decoded,
// the finish chunk, and (with stream_options.include_usage) a usage chunk.
func (s *stream) Next() ([]byte, error) {
	for {
		if len(s.queue) > 0 {
			c := s.queue[0]
			s.queue = s.queue[1:]
			return c, nil
		}
		if s.finished {
			return nil, io.EOF
		}
		if !s.started {
			s.started = true
			if s.endpoint == serve.EndpointChat {
				return s.chunk(map[string]any{"role": "assistant", "content": ""}, "", nil), nil
			}
			if s.echo != "" {
				return s.chunk(nil, s.echo, nil), nil
			}
		}
		text, finish, err := s.j.take()
		if err != nil {
			s.finished = true
			return nil, fmt.Errorf("engine: %w", err)
		}
		if s.j.tools != nil {
			s.toolEvents(text, finish != "")
			text = ""
			if finish != "" && s.nCalls > 0 {
				finish = "tool_calls"
			}
		}
		if text != "" {
			s.queue = append(s.queue, s.chunk(map[string]any{"content": text}, text, nil))
		}
		if finish != "" {
			s.finished = true
			s.usage = s.usageValue()
			s.queue = append(s.queue, s.chunk(map[string]any{}, "", &finish))
			if s.includeUsage {
				b, _ := json.Marshal(map[string]any{"id": s.id, "object": s.object(), "created": s.created, "model": s.b.name,
					"choices": []any{}, "usage": usageJSON(s.usage)})
				s.queue = append(s.queue, b)
			}
			continue
		}
		if text != "" || len(s.queue) > 0 {
			continue
		}
		if err := s.j.wait(s.ctx); err != nil {
			s.finished = true
			s.j.end("", err)
			return nil, err
		}
	}
}

// Usage is valid after io.EOF.
func (s *stream) Usage() *billing.Usage { return s.usage }

// Close cancels the job if it is still running (the client went away).
func (s *stream) Close() error {
	s.j.end("", context.Canceled)
	return nil
}

func usageJSON(u *billing.Usage) map[string]int64 {
	return map[string]int64{"prompt_tokens": u.PromptTokens, "completion_tokens": u.CompletionTokens, "total_tokens": u.Total()}
}

func (s *stream) collect() (*serve.Response, error) {
	var out strings.Builder
	out.WriteString(s.echo)
	for {
		text, finish, err := s.j.take()
		out.WriteString(text)
		if err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		if finish != "" {
			u := s.usageValue()
			var choice map[string]any
			obj := "chat.completion"
			if s.endpoint == serve.EndpointChat {
				msg := map[string]any{"role": "assistant", "content": out.String()}
				if s.j.tools != nil {
					content, calls := s.j.tools.format.Parse(out.String(), s.j.tools.known)
					msg["content"] = content
					if len(calls) > 0 {
						msg["tool_calls"] = openAIToolCalls(s.id, calls)
						finish = "tool_calls"
						if content == "" {
							msg["content"] = nil
						}
					}
				}
				choice = map[string]any{"index": 0, "message": msg, "finish_reason": finish, "logprobs": nil}
				if s.j.logprobs >= 0 {
					choice["logprobs"] = s.logprobsJSON(s.j.takeLogprobs())
				}
			} else {
				obj = "text_completion"
				choice = map[string]any{"index": 0, "text": out.String(), "finish_reason": finish, "logprobs": nil}
				if s.j.logprobs >= 0 {
					choice["logprobs"] = s.logprobsJSON(s.j.takeLogprobs())
				}
			}
			body, _ := json.Marshal(map[string]any{"id": s.id, "object": obj, "created": s.created, "model": s.b.name,
				"choices": []any{choice}, "usage": usageJSON(u)})
			return &serve.Response{Body: body, Usage: u}, nil
		}
		if err := s.j.wait(s.ctx); err != nil {
			s.j.end("", err)
			return nil, err
		}
	}
}

// submit hands j to the scheduler, unless the caller gives up or the
// backend is closing (retryable: another backend may take the request).
func (b *Backend) submit(ctx context.Context, j *job) error {
	select {
	case b.sched.submit <- j:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.closed:
		return fmt.Errorf("%w: %w", serve.ErrRetryable, errClosed)
	}
}

func (s *stream) logprobsJSON(entries []tokenLogprob) map[string]any {
	if s.endpoint == serve.EndpointChat {
		return chatLogprobs(entries)
	}
	out := completionLogprobs(entries, s.lpOffset)
	for _, e := range entries {
		s.lpOffset += len(e.piece)
	}
	return out
}
