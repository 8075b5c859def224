package engine

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve"
)

// maxEmbedInputs is OpenAI's limit on inputs per embeddings request.
const maxEmbedInputs = 2048

type embedRequest struct {
	Input          json.RawMessage `json:"input"`
	EncodingFormat *string         `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
}

// embedInputs tokenizes an embeddings input: a string, an array of strings,
// an array of token ids, or an array of such arrays. Text gets the model's
// BOS/EOS as for generation; token arrays are used as given, as llama.cpp's
// server does.
func (b *Backend) embedInputs(raw json.RawMessage) ([][]int32, error) {
	const shape = "input must be a string, an array of strings, an array of token ids or an array of token-id arrays"
	if len(raw) == 0 || string(raw) == "null" {
		return nil, badParam("input", "you must provide an input parameter")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return b.embedTexts([]string{s})
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, badParam("input", shape)
	}
	if len(items) == 0 {
		return nil, badParam("input", "input must not be an empty array")
	}
	if len(items) > maxEmbedInputs {
		return nil, badParam("input", "at most %d inputs per request, got %d", maxEmbedInputs, len(items))
	}
	var texts []string
	if err := json.Unmarshal(raw, &texts); err == nil {
		return b.embedTexts(texts)
	}
	var ids []int64
	if err := json.Unmarshal(raw, &ids); err == nil {
		t, err := b.tokenIDs(ids, "input")
		if err != nil {
			return nil, err
		}
		return [][]int32{t}, nil
	}
	var lists [][]int64
	if err := json.Unmarshal(raw, &lists); err != nil {
		return nil, badParam("input", shape)
	}
	out := make([][]int32, len(lists))
	for i, l := range lists {
		t, err := b.tokenIDs(l, fmt.Sprintf("input[%d]", i))
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

func (b *Backend) embedTexts(texts []string) ([][]int32, error) {
	out := make([][]int32, len(texts))
	for i, s := range texts {
		if s == "" {
			return nil, badParam("input", "input[%d] is an empty string", i)
		}
		// Work bounded by the context, not the input, as for prompts
		// (prompt.go): refused by its length alone, or once it overflows.
		ctx := b.sched.ctxSize
		if least := leastTokens(b.tok, len(s)); least > ctx {
			return nil, tooLong("input", "input[%d] is %d bytes, at least %d tokens; this model's context holds %d", i, len(s), least, ctx)
		}
		toks, ok := b.tok.EncodeLimit(s, true, false, ctx)
		if !ok {
			return nil, tooLong("input", "input[%d] is more than %d tokens; this model's context holds %d", i, ctx, ctx)
		}
		out[i] = toks
		if len(out[i]) == 0 {
			return nil, badParam("input", "input[%d] has no tokens", i)
		}
	}
	return out, nil
}

func (b *Backend) tokenIDs(ids []int64, param string) ([]int32, error) {
	if len(ids) == 0 {
		return nil, badParam("input", "%s is an empty token array", param)
	}
	out := make([]int32, len(ids))
	for i, id := range ids {
		if id < 0 || id >= int64(b.m.Vocab) {
			return nil, badParam("input", "%s holds token %d, outside this model's vocabulary of %d", param, id, b.m.Vocab)
		}
		out[i] = int32(id)
	}
	return out, b.fitsContext(out, -1)
}

func (b *Backend) fitsContext(toks []int32, i int) error {
	if len(toks) <= b.sched.ctxSize {
		return nil
	}
	which := "the input"
	if i >= 0 {
		which = fmt.Sprintf("input[%d]", i)
	}
	return tooLong("input", "%s is %d tokens; this model's context holds %d", which, len(toks), b.sched.ctxSize)
}

// embed serves /v1/embeddings: the inputs go through the scheduler as one
// job, each as prompt work under the per-step prefill budget (so decoding
// requests keep their pace), and each comes back mean-pooled over its
// tokens' final-norm hidden states and L2-normalized, as llama.cpp's server
// answers with --pooling mean.
func (b *Backend) embed(ctx context.Context, req *serve.Request) (*serve.Response, error) {
	if req.Stream {
		return nil, badParam("stream", "embeddings cannot be streamed")
	}
	var r embedRequest
	if err := json.Unmarshal(req.Body, &r); err != nil {
		return nil, badParam("", "invalid JSON body: %v", err)
	}
	format := "float"
	if r.EncodingFormat != nil {
		format = *r.EncodingFormat
	}
	if format != "float" && format != "base64" {
		return nil, badParam("encoding_format", "encoding_format must be \"float\" or \"base64\", got %q", format)
	}
	if r.Dimensions != nil && *r.Dimensions != b.m.Embd {
		return nil, badParam("dimensions", "this model's embeddings have %d dimensions; it cannot return %d", b.m.Embd, *r.Dimensions)
	}
	inputs, err := b.embedInputs(r.Input)
	if err != nil {
		return nil, err
	}
	j := &job{ctx: ctx, embed: inputs, notify: make(chan struct{}, 1)}
	if err := b.submit(ctx, j); err != nil {
		return nil, err
	}
	for {
		_, finish, err := j.take()
		if err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		if finish != "" {
			break
		}
		if err := j.wait(ctx); err != nil {
			j.end("", err)
			return nil, err
		}
	}
	var n int64
	for _, in := range inputs {
		n += int64(len(in))
	}
	data := make([]map[string]any, len(j.vectors))
	for i, v := range j.vectors {
		var e any = v
		if format == "base64" {
			buf := make([]byte, 4*len(v))
			for k, x := range v {
				binary.LittleEndian.PutUint32(buf[4*k:], math.Float32bits(x))
			}
			e = base64.StdEncoding.EncodeToString(buf)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": e}
	}
	u := &billing.Usage{PromptTokens: n}
	body, err := json.Marshal(map[string]any{"object": "list", "data": data, "model": b.name,
		"usage": map[string]int64{"prompt_tokens": n, "total_tokens": n}})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return &serve.Response{Body: body, Usage: u}, nil
}

// normalize divides the pooled sum by the token count and scales it to unit
// L2 norm (the norm in float64, as llama.cpp's common_embd_normalize).
func normalize(sum []float32, n int) []float32 {
	out := make([]float32, len(sum))
	var ss float64
	for i, v := range sum {
		out[i] = v / float32(n)
		ss += float64(out[i]) * float64(out[i])
	}
	if ss == 0 {
		return out
	}
	scale := 1 / math.Sqrt(ss)
	for i := range out {
		out[i] = float32(float64(out[i]) * scale)
	}
	return out
}
