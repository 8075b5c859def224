package engine_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
	"github.com/llmctl/llmctl/pkg/serve/engine/model"
)

type embedAnswer struct {
	Object string `json:"object"`
	Model  string `json:"model"`
	Data   []struct {
		Object    string          `json:"object"`
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Usage map[string]int64 `json:"usage"`
}

func embed(t *testing.T, b *engine.Backend, body string) (embedAnswer, *serve.Response) {
	t.Helper()
	resp, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointEmbeddings, Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	var a embedAnswer
	if err := json.Unmarshal(resp.Body, &a); err != nil {
		t.Fatalf("%v: %s", err, resp.Body)
	}
	return a, resp
}

func floats(t *testing.T, raw json.RawMessage) []float32 {
	t.Helper()
	var v []float32
	if err := json.Unmarshal(raw, &v); err == nil {
		return v
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("embedding %.40s is neither floats nor base64", raw)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%4 != 0 {
		t.Fatalf("bad base64 embedding: %v", err)
	}
	v = make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// demoModel loads the demo file with the model package directly, for
// computing the expected pooled vectors without the backend.
func demoModel(t *testing.T) *model.Model {
	t.Helper()
	m, err := model.Load(demoGGUF(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestEmbeddings: the answer has OpenAI's shape, one unit vector of the
// model's width per input in order, usage counted by the model's tokenizer;
// the vector is the mean of the final-norm hidden states computed directly
// with the model, normalized; text, token ids and base64 agree.
func TestEmbeddings(t *testing.T) {
	b := demo(t)
	m := demoModel(t)
	texts := []string{"In the beginning God created the heaven and the earth.", "the sea", "In the beginning God created the heaven and the earth."}
	in, _ := json.Marshal(texts)
	a, resp := embed(t, b, `{"model":"demo-kjv-ngram","input":`+string(in)+`}`)
	if a.Object != "list" || a.Model != engine.DemoName || len(a.Data) != len(texts) {
		t.Fatalf("answer %+v", a)
	}
	var tokens int64
	vecs := make([][]float32, len(texts))
	for i, d := range a.Data {
		if d.Object != "embedding" || d.Index != i {
			t.Fatalf("data[%d] = %+v", i, d)
		}
		vecs[i] = floats(t, d.Embedding)
		if len(vecs[i]) != m.Embd {
			t.Fatalf("data[%d] has %d values, the model is %d wide", i, len(vecs[i]), m.Embd)
		}
		toks := b.Tokenizer().Encode(texts[i], true, false)
		tokens += int64(len(toks))
		// the expected vector, computed in one batch
		pool := make([]float32, m.Embd)
		if err := m.Step(m.NewWorkspace(1), []model.Seq{{Cache: m.NewCache(len(toks)), Tokens: toks, Pool: pool}}); err != nil {
			t.Fatal(err)
		}
		var ss, dot, norm float64
		for k := range pool {
			ss += float64(pool[k]) * float64(pool[k])
		}
		for k := range pool {
			w := float64(pool[k]) / math.Sqrt(ss)
			dot += w * float64(vecs[i][k])
			norm += float64(vecs[i][k]) * float64(vecs[i][k])
		}
		if math.Abs(norm-1) > 1e-5 || dot < 1-1e-5 {
			t.Errorf("data[%d]: norm² %v, cosine with the directly computed mean %v", i, norm, dot)
		}
	}
	if a.Usage["prompt_tokens"] != tokens || a.Usage["total_tokens"] != tokens || resp.Usage == nil ||
		resp.Usage.PromptTokens != tokens || resp.Usage.CompletionTokens != 0 {
		t.Fatalf("usage %v / %+v, want %d prompt tokens", a.Usage, resp.Usage, tokens)
	}
	if fmt.Sprint(vecs[0]) != fmt.Sprint(vecs[2]) {
		t.Error("identical inputs gave different vectors")
	}
	if fmt.Sprint(vecs[0]) == fmt.Sprint(vecs[1]) {
		t.Error("different inputs gave the same vector")
	}

	// the same input as token ids, and base64-encoded
	ids, _ := json.Marshal(b.Tokenizer().Encode(texts[1], true, false))
	for _, body := range []string{`{"input":` + string(ids) + `}`, `{"input":[` + string(ids) + `],"encoding_format":"base64"}`, `{"input":"the sea","encoding_format":"float"}`} {
		a, _ := embed(t, b, body)
		if len(a.Data) != 1 || fmt.Sprint(floats(t, a.Data[0].Embedding)) != fmt.Sprint(vecs[1]) {
			t.Errorf("%s: vector differs from the text input's", body)
		}
	}
}

// TestEmbeddingsDoNotBlockGeneration: a completion that arrives while a
// large embeddings request is being computed gets its prompt processed and
// finishes first: embeddings take the prompt budget completions leave. The
// inputs are token arrays of a multiple of the prefill chunk, so the
// embeddings alone would fill every step's budget to the end. An input's
// vector is the same as when computed alone.
func TestEmbeddingsDoNotBlockGeneration(t *testing.T) {
	b := demo(t)
	unit := b.Tokenizer().Encode(" and the LORD spake unto Moses, saying,", false, false)
	inputs := make([][]int32, 4)
	for i := range inputs {
		for len(inputs[i]) < 512 {
			inputs[i] = append(inputs[i], unit...)
		}
		inputs[i] = inputs[i][:512]
		inputs[i][0] = int32(100 + i) // distinct inputs
	}
	in, _ := json.Marshal(inputs)
	var done atomic.Bool
	res := make(chan []byte, 1)
	go func() {
		resp, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointEmbeddings, Body: []byte(`{"input":` + string(in) + `}`)})
		done.Store(true)
		if err != nil {
			t.Error(err)
			res <- nil
			return
		}
		res <- resp.Body
	}()
	time.Sleep(100 * time.Millisecond) // let the embeddings job be admitted first (ordering only)
	_, finish, n := streamText(t, context.Background(), b, serve.EndpointCompletions, `{"prompt":"short","max_tokens":3,"temperature":0}`)
	if finish == "" || n == 0 {
		t.Fatalf("short request: finish %q, %d tokens", finish, n)
	}
	if done.Load() {
		t.Error("the embeddings request finished before the short completion")
	}
	var a embedAnswer
	if err := json.Unmarshal(<-res, &a); err != nil || len(a.Data) != len(inputs) {
		t.Fatalf("%d vectors (%v)", len(a.Data), err)
	}
	one, _ := json.Marshal(inputs[2])
	alone, _ := embed(t, b, `{"input":`+string(one)+`}`)
	if string(a.Data[2].Embedding) != string(alone.Data[0].Embedding) {
		t.Error("an input's vector changed when computed in a batch of inputs beside a completion")
	}
}

// FuzzEmbeddingsInput: any input value is either answered with one unit
// vector per input or refused with a 400 naming a parameter; never a panic
// or another error.
func FuzzEmbeddingsInput(f *testing.F) {
	for _, s := range []string{`"x"`, `["a","b"]`, `[1,2,3]`, `[[1],[2,3]]`, `[]`, `[[]]`, `[1,"a"]`, `{"a":1}`, `null`,
		`[1.5]`, `[99999999999]`, `""`, `[[1,2],"a"]`, `"\u0000\uffff"`, `true`} {
		f.Add(s)
	}
	b, err := engine.OpenDemo(engine.Options{Threads: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = b.Close() })
	f.Fuzz(func(t *testing.T, input string) {
		resp, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointEmbeddings,
			Body: []byte(`{"input":` + input + `}`)})
		if err != nil {
			var re *engine.RequestError
			if !errors.As(err, &re) || re.Status != 400 {
				t.Fatalf("input %q: %v", input, err)
			}
			return
		}
		var a embedAnswer
		if err := json.Unmarshal(resp.Body, &a); err != nil || len(a.Data) == 0 || resp.Usage.PromptTokens <= 0 {
			t.Fatalf("input %q: answer %s (%v)", input, resp.Body, err)
		}
		for _, d := range a.Data {
			var ss float64
			for _, v := range floats(t, d.Embedding) {
				ss += float64(v) * float64(v)
			}
			if math.Abs(ss-1) > 1e-4 {
				t.Fatalf("input %q: norm² %v", input, ss)
			}
		}
	})
}
