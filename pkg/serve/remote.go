package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
)

// RemoteConfig describes an OpenAI-compatible HTTP backend (vLLM, llama.cpp
// server, Ollama, another llmctl...).
type RemoteConfig struct {
	Name    string
	URL     string // base URL; requests go to URL/v1/<endpoint>
	APIKey  string // optional upstream bearer key
	Models  []string
	Weight  int // default 1
	MaxConc int // max outstanding requests, 0 = unlimited
	// Protocols the backend serves itself besides chat ("responses",
	// "messages", "rerank"): requests in them are passed through.
	Protocols []string

	ConnectTimeout   time.Duration // TCP connect; default 2s
	FirstByteTimeout time.Duration // request sent → response headers; default 60s
	TotalTimeout     time.Duration // whole exchange incl. a stream; default 10m
}

// maxUpstreamBody bounds a non-stream answer read into memory.
const maxUpstreamBody = 64 << 20

// Remote is a Backend over HTTP.
type Remote struct {
	cfg    RemoteConfig
	base   string
	client *http.Client
}

// dialError marks a failure to connect, which is always safe to retry.
type dialError struct{ err error }

func (e dialError) Error() string { return e.err.Error() }
func (e dialError) Unwrap() error { return e.err }

// NewRemote builds a remote backend with its own connection pool.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	if cfg.Name == "" {
		return nil, errors.New("backend: name is required")
	}
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return nil, fmt.Errorf("backend %s: url %q must start with http:// or https://", cfg.Name, cfg.URL)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 2 * time.Second
	}
	if cfg.FirstByteTimeout <= 0 {
		cfg.FirstByteTimeout = 60 * time.Second
	}
	if cfg.TotalTimeout <= 0 {
		cfg.TotalTimeout = 10 * time.Minute
	}
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, dialError{err}
			}
			return c, nil
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.ConnectTimeout,
		ResponseHeaderTimeout: cfg.FirstByteTimeout,
	}
	// Both forms people copy work: the server's root and OpenAI's base URL
	// style ending in /v1 (the paths below add /v1 themselves).
	base := strings.TrimSuffix(strings.TrimRight(cfg.URL, "/"), "/v1")
	return &Remote{cfg: cfg, base: base, client: &http.Client{Transport: tr}}, nil
}

// Name is the configured backend name.
func (r *Remote) Name() string { return r.cfg.Name }

// Models asks the backend's /v1/models; it doubles as the active health check.
func (r *Remote) Models(ctx context.Context) ([]string, error) {
	u := r.base + "/v1/models"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	r.auth(req)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("backend %s: list models: %w", r.cfg.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("backend %s: GET %s: status %d", r.cfg.Name, u, resp.StatusCode)
		if resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: not an OpenAI-compatible server at %s? (give the URL its /v1 paths hang off, e.g. http://host:8000)", err, r.base)
		}
		return nil, err
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&list); err != nil {
		return nil, fmt.Errorf("backend %s: list models: %w", r.cfg.Name, err)
	}
	out := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		if m.ID != "" {
			out = append(out, m.ID)
		}
	}
	return out, nil
}

func (r *Remote) auth(req *http.Request) {
	if r.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+r.cfg.APIKey)
	}
}

// Do forwards req. Failures before a response wrap ErrRetryable when another
// backend may be tried (connect error, 5xx, 429); a first-byte or total
// timeout is not retried (the backend may still be working on it).
func (r *Remote) Do(ctx context.Context, req *Request) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.TotalTimeout)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+"/v1/"+string(req.Endpoint), bytes.NewReader(req.Body))
	if err != nil {
		cancel()
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if req.Stream {
		hreq.Header.Set("Accept", "text/event-stream")
	}
	if req.RequestID != "" {
		hreq.Header.Set("X-Request-Id", req.RequestID)
	}
	r.auth(hreq)
	resp, err := r.client.Do(hreq)
	if err != nil {
		// Classified before cancel: after it, ctx.Err() would read every
		// reset as the client going away (no retry, no fallback).
		err = r.transportError(ctx, err)
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		cancel()
		be := &BackendError{Backend: r.cfg.Name, Status: resp.StatusCode, Body: body,
			Err: fmt.Errorf("upstream answered %s", resp.Status)}
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			be.Reason, be.Retryable = Reason429, true
		case resp.StatusCode >= 500:
			be.Reason, be.Retryable = Reason5xx, true
		}
		return nil, be
	}
	if req.Stream {
		return &Response{Events: &sseStream{backend: r.cfg.Name, ctx: ctx, cancel: cancel, body: resp.Body,
			rd: bufio.NewReaderSize(resp.Body, 16<<10), raw: req.Endpoint.native()}}, nil
	}
	defer cancel()
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamBody))
	if err != nil {
		// The body was cut after the headers: not retried, the backend did the work.
		return nil, &BackendError{Backend: r.cfg.Name, Reason: ReasonStream, Err: r.transportError(ctx, err)}
	}
	return &Response{Body: body, Usage: usageOf(body)}, nil
}

func (r *Remote) transportError(ctx context.Context, err error) error {
	var de dialError
	var ne net.Error
	switch {
	case errors.As(err, &de):
		return &BackendError{Backend: r.cfg.Name, Reason: ReasonConnect, Retryable: true, Err: err}
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return &BackendError{Backend: r.cfg.Name, Reason: ReasonTimeout, Err: fmt.Errorf("%w: %w", context.DeadlineExceeded, err)}
	case ctx.Err() != nil:
		return ctx.Err() // the client went away
	default:
		// Reset or EOF before any response: nothing reached the client.
		return &BackendError{Backend: r.cfg.Name, Reason: ReasonConnect, Retryable: true, Err: err}
	}
}

// usageOf extracts "usage" from an OpenAI answer, nil when absent.
func usageOf(body []byte) *billing.Usage {
	if !bytes.Contains(body, []byte(`"usage"`)) {
		return nil
	}
	var v struct {
		Usage *billing.Usage `json:"usage"`
	}
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	return v.Usage
}

// sseStream reads an upstream SSE body event by event.
type sseStream struct {
	backend string
	ctx     context.Context
	cancel  context.CancelFunc
	body    io.ReadCloser
	rd      *bufio.Reader
	usage   *billing.Usage
	data    []byte
	done    bool
	// raw keeps whole events (event:, id: and data: lines) for a passed
	// through protocol, whose events are named and end without [DONE].
	raw bool
}

// Next returns the data of the next event, io.EOF after [DONE] (or a clean
// end of body after at least the last complete event).
func (s *sseStream) Next() ([]byte, error) {
	if s.done {
		return nil, io.EOF
	}
	s.data = s.data[:0]
	have := false
	for {
		line, err := s.rd.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: copy what we have before the
			// next read reuses the buffer, then gather the rest.
			head := append([]byte(nil), line...)
			rest, err2 := s.rd.ReadBytes('\n')
			line, err = append(head, rest...), err2
		}
		if err != nil && len(line) == 0 {
			if err == io.EOF {
				if have {
					return s.event()
				}
				s.done = true
				return nil, &BackendError{Backend: s.backend, Reason: ReasonStream, Err: io.ErrUnexpectedEOF}
			}
			return nil, s.streamError(err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if have {
				return s.event()
			}
			continue
		}
		if s.raw && !bytes.HasPrefix(line, []byte(":")) {
			if have {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, line...)
			have = true
		} else if v, ok := bytes.CutPrefix(line, []byte("data:")); ok && !s.raw {
			v = bytes.TrimPrefix(v, []byte(" "))
			if have {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, v...)
			have = true
		}
		// event:, id:, retry: and comments carry nothing the gateway needs.
		if err != nil {
			if have {
				return s.event()
			}
			return nil, s.streamError(err)
		}
	}
}

func (s *sseStream) event() ([]byte, error) {
	if s.raw {
		return s.data, nil
	}
	if bytes.Equal(s.data, []byte("[DONE]")) {
		s.done = true
		return nil, io.EOF
	}
	if u := usageOf(s.data); u != nil {
		s.usage = u
	}
	return s.data, nil
}

func (s *sseStream) streamError(err error) error {
	s.done = true
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF // never let a cut stream read as a clean end
	}
	if s.ctx.Err() != nil && !errors.Is(s.ctx.Err(), context.DeadlineExceeded) {
		return s.ctx.Err()
	}
	reason := ReasonStream
	if errors.Is(s.ctx.Err(), context.DeadlineExceeded) {
		reason = ReasonTimeout
	}
	return &BackendError{Backend: s.backend, Reason: reason, Err: err}
}

// Buffered reports whether the next event's data has already arrived in
// full, so Next will not wait on upstream for it. A block of comments only
// (a keep-alive ping) does not count: Next would read past it.
func (s *sseStream) Buffered() bool {
	n := s.rd.Buffered()
	if s.done || n == 0 {
		return false
	}
	b, _ := s.rd.Peek(n)
	end := bytes.Index(b, []byte("\n\n"))
	if e := bytes.Index(b, []byte("\n\r\n")); e >= 0 && (end < 0 || e < end) {
		end = e
	}
	return end >= 0 && bytes.Contains(b[:end], []byte("data:"))
}

// Usage is the upstream's reported usage, nil if it sent none.
func (s *sseStream) Usage() *billing.Usage { return s.usage }

// Close cancels the upstream request if it is still running.
func (s *sseStream) Close() error {
	s.cancel()
	return s.body.Close()
}
