package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/llmctl/llmctl/internal/llmctltest"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
)

func TestMain(m *testing.M) { os.Exit(llmctltest.Main(m)) }

const model = "double-model"

func client(s *llmctltest.Server, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(s.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func reqID(id string) option.RequestOption { return option.WithHeader("X-Request-Id", id) }

func chat(prompt string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}}
}

// llmctl runs a CLI command against the server's database.
func llmctl(t *testing.T, db string, args ...string) string {
	t.Helper()
	out, errOut, err := llmctltest.Run(t, append(args, "--db", db)...)
	if err != nil {
		t.Fatalf("llmctl %v: %v\n%s", args, err, errOut)
	}
	return out
}

func createKey(t *testing.T, db string, args ...string) (id, key string) {
	t.Helper()
	return llmctltest.CreateKey(t, db, "admin", args...)
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "serve.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func apiErr(t *testing.T, err error, status int, code string) {
	t.Helper()
	var ae *openai.Error
	if !errors.As(err, &ae) {
		t.Fatalf("want an API error %d %s, got %v", status, code, err)
	}
	if ae.StatusCode != status || (code != "" && ae.Code != code) || ae.Message == "" || ae.Type == "" {
		t.Fatalf("got %d code=%q type=%q %q, want %d %s", ae.StatusCode, ae.Code, ae.Type, ae.Message, status, code)
	}
}

// TestAPI covers the four endpoints, streaming with and without usage, and
// model scoping, through openai-go against the built binary.
func TestAPI(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a", Models: []string{model, "embed-model"}})
	cfg := writeConfig(t, "aliases:\n  gpt-4o-mini: "+model+"\n")
	db := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")
	s := llmctltest.Start(t, llmctltest.Options{DB: db, Args: []string{"--config", cfg, "--backend", "a=" + d.URL()}})
	if !strings.HasPrefix(s.AdminKey, "sk-llm-") {
		t.Fatalf("no admin key printed on an empty store; stdout:\n%s", s.Stdout())
	}
	c := client(s, s.AdminKey)
	ctx := ctxT(t)

	t.Run("chat", func(t *testing.T) {
		res, err := c.Chat.Completions.New(ctx, chat("hello there tokens=3"), reqID("e2e-chat"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Choices[0].Message.Content != "t1 t2 t3 " || res.Usage.PromptTokens != 3 || res.Usage.CompletionTokens != 3 {
			t.Fatalf("answer %q usage %+v", res.Choices[0].Message.Content, res.Usage)
		}
		if rec, ok := d.Record("e2e-chat"); !ok || rec.Model != model {
			t.Fatalf("double record %+v", rec)
		}
	})
	t.Run("alias", func(t *testing.T) {
		p := chat("x")
		p.Model = "gpt-4o-mini"
		if _, err := c.Chat.Completions.New(ctx, p, reqID("e2e-alias")); err != nil {
			t.Fatal(err)
		}
		if rec, _ := d.Record("e2e-alias"); rec.Model != model {
			t.Fatalf("alias not resolved upstream: %+v", rec)
		}
	})
	t.Run("completions", func(t *testing.T) {
		res, err := c.Completions.New(ctx, openai.CompletionNewParams{Model: model,
			Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("a b tokens=2")}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Choices[0].Text != "t1 t2 " || res.Usage.CompletionTokens != 2 {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("embeddings", func(t *testing.T) {
		res, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "embed-model",
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a b", "c"}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Data) != 2 || len(res.Data[1].Embedding) != 8 || res.Usage.PromptTokens != 3 {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("models", func(t *testing.T) {
		page, err := c.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		if strings.Join(ids, ",") != "double-model,embed-model,gpt-4o-mini" {
			t.Fatalf("models = %v", ids)
		}
		_, scoped := createKey(t, db, "--models", "embed-model")
		sc := client(s, scoped)
		page, err = sc.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) != 1 || page.Data[0].ID != "embed-model" {
			t.Fatalf("scoped key sees %+v", page.Data)
		}
		m, err := c.Models.Get(ctx, "embed-model")
		if err != nil || m.ID != "embed-model" {
			t.Fatalf("get model: %+v %v", m, err)
		}
	})
	for _, withUsage := range []bool{true, false} {
		t.Run(fmt.Sprint("stream usage=", withUsage), func(t *testing.T) {
			p := chat("one two tokens=6")
			if withUsage {
				p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			st := c.Chat.Completions.NewStreaming(ctx, p)
			var text strings.Builder
			var usageChunks int
			var usage openai.CompletionUsage
			for st.Next() {
				ch := st.Current()
				if len(ch.Choices) > 0 {
					text.WriteString(ch.Choices[0].Delta.Content)
				}
				if ch.Usage.TotalTokens > 0 {
					usageChunks++
					usage = ch.Usage
				}
			}
			if err := st.Err(); err != nil {
				t.Fatal(err)
			}
			if text.String() != "t1 t2 t3 t4 t5 t6 " {
				t.Fatalf("streamed %q", text.String())
			}
			if withUsage && (usageChunks != 1 || usage.PromptTokens != 3 || usage.CompletionTokens != 6) {
				t.Fatalf("usage chunks=%d usage=%+v", usageChunks, usage)
			}
			if !withUsage && usageChunks != 0 {
				t.Fatalf("client did not ask for usage but got %d usage chunks", usageChunks)
			}
		})
	}
	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get(s.AdminURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		problems, err := promlint.New(resp.Body).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
		resp2, _ := http.Get(s.AdminURL + "/metrics")
		buf := new(strings.Builder)
		_, _ = fmt.Fprint(buf, readAll(resp2))
		for _, want := range []string{
			`llmctl_requests_total{backend="a",code="200",model="double-model",route="chat"}`,
			`llmctl_tokens_total{direction="out",model="double-model"}`,
			`llmctl_backend_up{backend="a"} 1`,
			`llmctl_time_to_first_token_seconds_bucket`,
			`llmctl_inter_token_latency_seconds_bucket`,
			`llmctl_requests_in_flight`,
		} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if strings.Contains(buf.String(), s.AdminKey) {
			t.Error("metrics leak the key")
		}
	})
	if strings.Contains(s.Stderr(), s.AdminKey) || strings.Contains(s.Stderr(), "hello there") {
		t.Error("the log contains a key or a prompt")
	}
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}
