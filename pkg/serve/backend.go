package serve

import (
	"context"

	"github.com/llmctl/llmctl/pkg/billing"
)

// Endpoint is an OpenAI API operation a backend can serve.
type Endpoint string

// The endpoints the gateway routes.
const (
	EndpointChat        Endpoint = "chat/completions"
	EndpointCompletions Endpoint = "completions"
	EndpointEmbeddings  Endpoint = "embeddings"
	// Passed through to backends that declare them (RemoteConfig.Protocols).
	EndpointResponses Endpoint = "responses"
	EndpointMessages  Endpoint = "messages"
	EndpointRerank    Endpoint = "rerank"
	EndpointScore     Endpoint = "score"
)

// native reports whether ep is a passed-through protocol's: its stream
// events reach the client as the backend wrote them.
func (ep Endpoint) native() bool { return ep == EndpointResponses || ep == EndpointMessages }

// generates reports whether ep's answers have completion tokens.
func (ep Endpoint) generates() bool {
	return ep != EndpointEmbeddings && ep != EndpointRerank && ep != EndpointScore
}

// Request is one validated client request on its way to a backend.
type Request struct {
	Endpoint  Endpoint
	Model     string // the backend's own model name, after alias resolution
	Body      []byte // OpenAI-shaped JSON body, model already rewritten
	Stream    bool
	RequestID string
}

// Response is a backend's answer: Body for a plain answer, Events for a stream.
type Response struct {
	Body   []byte         // non-stream: the full OpenAI-shaped JSON answer
	Usage  *billing.Usage // non-stream: usage reported in Body, if any
	Events Stream         // stream: the SSE data payloads, in order (whole events for a native protocol)
}

// Stream yields the data payloads of an SSE answer one event at a time.
type Stream interface {
	// Next returns the next event's data (without "data: " and without the
	// final "[DONE]"), or io.EOF after the last one.
	Next() ([]byte, error)
	// Usage is the usage reported by the stream, valid after io.EOF; nil if none.
	Usage() *billing.Usage
	// Close releases the stream; it cancels the upstream work if not finished.
	Close() error
}

// Backend serves models: a remote OpenAI-compatible server or the embedded
// engine. The router does not know which kind it holds.
type Backend interface {
	Name() string
	// Models lists the model names this backend serves.
	Models(ctx context.Context) ([]string, error)
	// Do performs req. Errors before any answer are retryable on another
	// backend when they wrap ErrRetryable.
	Do(ctx context.Context, req *Request) (*Response, error)
}
