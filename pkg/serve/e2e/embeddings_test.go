package e2e

import (
	"bytes"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/llmctl/llmctl/internal/llmctltest"
	"github.com/llmctl/llmctl/pkg/serve/engine"
	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
)

// TestEngineEmbeddings serves /v1/embeddings from the demo model through a
// real `llmctl serve` to openai-go: unit vectors of the model's width, one
// per input, identical for identical inputs, usage counted by the model's
// tokenizer, base64 decoded by the client to the same values, and bad input
// answered with OpenAI-shaped 400s.
func TestEngineEmbeddings(t *testing.T) {
	s := llmctltest.Start(t, llmctltest.Options{Args: []string{"--engine-threads", "1"}})
	c := client(s, s.AdminKey)
	ctx := ctxT(t)

	// the model's width from its own file, and its tokenizer for the count
	var file bytes.Buffer
	if err := engine.WriteDemo(&file); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(file.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	width, ok := f.Uint("llama.embedding_length")
	if !ok {
		t.Fatal("demo file has no llama.embedding_length")
	}
	local, err := engine.OpenDemo(engine.Options{Threads: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()

	texts := []string{"And God said, Let there be light", "the sea", "And God said, Let there be light"}
	params := openai.EmbeddingNewParams{Model: engine.DemoName,
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: texts}}
	resp, err := c.Embeddings.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) != len(texts) || resp.Model != engine.DemoName {
		t.Fatalf("%d vectors for model %q", len(resp.Data), resp.Model)
	}
	var want int64
	for i, d := range resp.Data {
		want += int64(len(local.Tokenizer().Encode(texts[i], true, false)))
		if d.Index != int64(i) || len(d.Embedding) != int(width) {
			t.Fatalf("data[%d]: index %d, %d values, want %d", i, d.Index, len(d.Embedding), width)
		}
		var ss float64
		for _, v := range d.Embedding {
			ss += v * v
		}
		if math.Abs(math.Sqrt(ss)-1) > 1e-5 {
			t.Errorf("data[%d] has norm %v", i, math.Sqrt(ss))
		}
	}
	if !slices.Equal(resp.Data[0].Embedding, resp.Data[2].Embedding) {
		t.Error("identical inputs gave different vectors")
	}
	if slices.Equal(resp.Data[0].Embedding, resp.Data[1].Embedding) {
		t.Error("different inputs gave the same vector")
	}
	if resp.Usage.PromptTokens != want || resp.Usage.TotalTokens != want {
		t.Fatalf("usage %+v, the tokenizer counts %d", resp.Usage, want)
	}

	// one string, base64 on the wire: the client decodes the same floats
	one, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: engine.DemoName,
		Input:          openai.EmbeddingNewParamsInputUnion{OfString: openai.String("the sea")},
		EncodingFormat: openai.EmbeddingNewParamsEncodingFormatBase64})
	if err != nil {
		t.Fatal(err)
	}
	// JSON carries the float32 values' shortest decimals, which the client
	// parses as float64: equal once rounded back to float32.
	if len(one.Data) != 1 || !slices.Equal(f32(one.Data[0].Embedding), f32(resp.Data[1].Embedding)) {
		t.Error("base64 answer differs from the float one")
	}

	// bad input: OpenAI-shaped 400s, through the client and raw
	_, err = c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: engine.DemoName,
		Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String(strings.Repeat("light ", 3000))}})
	apiErr(t, err, 400, "")
	for _, body := range []string{
		`{"model":"` + engine.DemoName + `","input":[]}`,
		`{"model":"` + engine.DemoName + `","input":[1,"a"]}`,
		`{"model":"` + engine.DemoName + `","input":{"text":"x"}}`,
		`{"model":"` + engine.DemoName + `","input":5}`,
		`{"model":"` + engine.DemoName + `","input":"x","encoding_format":"int8"}`,
	} {
		if status, _ := rawPost(t, s.URL+"/v1/embeddings", s.AdminKey, body); status != 400 {
			t.Errorf("%s: status %d, want 400", body, status)
		}
	}
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}
