package anthropic

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/llmctl/llmctl/pkg/serve/apierror"
	"github.com/llmctl/llmctl/pkg/serve/protocol"
)

// The paths this protocol serves.
const (
	PathMessages    = "/v1/messages"
	PathCountTokens = "/v1/messages/count_tokens"
)

// Adapter plugs the Messages API into the gateway's protocol seam.
//
// Keys come in x-api-key (what Anthropic's clients send) or as a Bearer
// token. The anthropic-version header is accepted with any value or none:
// there is one Messages API shape here (2023-06-01's), so the version
// selects nothing; anthropic-beta is likewise ignored, and any beta feature
// it would unlock arrives as a body field that is refused by name.
type Adapter struct{}

var _ protocol.Adapter = Adapter{}

// Route is the metrics and access-log route label.
func (Adapter) Route() string { return "messages" }

// Paths are the routes served.
func (Adapter) Paths() []string { return []string{PathMessages, PathCountTokens} }

// APIKey reads x-api-key, else the Bearer token.
func (Adapter) APIKey(h http.Header) string {
	if k := strings.TrimSpace(h.Get("X-Api-Key")); k != "" {
		return k
	}
	return protocol.BearerKey(h)
}

// New begins one exchange.
func (Adapter) New(path string) protocol.Exchange {
	return &exchange{count: path == PathCountTokens, id: MessageID("")}
}

type exchange struct {
	count  bool
	id     string
	req    *Request
	out    bytes.Buffer
	stream *StreamWriter
}

func (x *exchange) Decode(body []byte) (*protocol.Request, *apierror.Error) {
	decode := DecodeMessages
	if x.count {
		decode = DecodeCountTokens
	}
	req, rerr := decode(body)
	if rerr != nil {
		return nil, &apierror.Error{Status: http.StatusBadRequest, Type: apierror.TypeInvalidRequest,
			Code: "invalid_request", Param: rerr.Param, Message: rerr.Message}
	}
	x.req = req
	// message_start carries the estimate; message_delta the backend's count.
	x.stream = NewStreamWriter(&x.out, req, x.id, req.InputEstimate)
	return &protocol.Request{Chat: req.Chat, CountTokens: x.count}, nil
}

func (x *exchange) JSON(status int, body []byte) (int, string, []byte) {
	const ctype = "application/json"
	if status != http.StatusOK {
		if status == http.StatusUnauthorized && strings.HasPrefix(openAIMessage(status, body), "missing API key") {
			// The gateway's words name the Bearer header of OpenAI's
			// clients; Anthropic's send x-api-key.
			return status, ctype, ErrorBody(ErrAuthentication, "missing API key: send x-api-key: sk-llm-... (or Authorization: Bearer sk-llm-...)", "")
		}
		return status, ctype, TranslateError(status, body, "")
	}
	if x.count {
		var tc protocol.TokenCount
		if err := json.Unmarshal(body, &tc); err != nil {
			return http.StatusInternalServerError, ctype, ErrorBody(ErrAPI, "the token count could not be read", "")
		}
		return status, ctype, CountTokensBody(tc.PromptTokens)
	}
	req := x.req
	if req == nil { // not reached: a 200 follows a decoded request
		req = &Request{}
	}
	out, err := TranslateResponse(body, req, x.id)
	if err != nil {
		// The backend answered (and the answer was charged) but in a shape
		// that cannot be translated: the client learns what went wrong.
		return http.StatusBadGateway, ctype, ErrorBody(ErrAPI, err.Error(), "")
	}
	return status, ctype, out
}

func (x *exchange) Chunk(data []byte) []byte {
	_ = x.stream.chunk(data) // writes to a buffer: no error
	return x.drain()
}

func (x *exchange) Done() []byte {
	_ = x.stream.done()
	return x.drain()
}

func (x *exchange) StreamError(body []byte) []byte {
	msg := "the stream ended before the answer was complete"
	if len(body) > 0 {
		msg = openAIMessage(http.StatusBadGateway, body)
	}
	_ = x.stream.Fail(ErrAPI, msg)
	return x.drain()
}

func (x *exchange) drain() []byte {
	if x.out.Len() == 0 {
		return nil
	}
	b := bytes.Clone(x.out.Bytes())
	x.out.Reset()
	return b
}
