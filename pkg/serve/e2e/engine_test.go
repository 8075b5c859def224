package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/llmctl/llmctl/internal/llmctltest"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// TestDemoDefault is the README's first command: a bare `llmctl serve`
// answers from the bundled demo model with the stock OpenAI client.
func TestDemoDefault(t *testing.T) {
	s := llmctltest.Start(t, llmctltest.Options{Args: []string{"--engine-threads", "1"}})
	if s.AdminKey == "" {
		t.Fatal("no admin key printed on an empty store")
	}
	c := client(s, s.AdminKey)
	ctx := ctxT(t)
	models, err := c.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models.Data) != 1 || models.Data[0].ID != engine.DemoName {
		t.Fatalf("models = %+v, want only %s", models.Data, engine.DemoName)
	}
	params := openai.ChatCompletionNewParams{Model: engine.DemoName, MaxTokens: openai.Int(8), Temperature: openai.Float(0),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("tell me about the sea")}}
	resp, err := c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" {
		t.Fatalf("empty answer: %+v", resp)
	}
	// the trained demo answers in words with spaces between them
	if words := strings.Fields(resp.Choices[0].Message.Content); len(words) < 4 {
		t.Fatalf("answer %q is not words separated by spaces", resp.Choices[0].Message.Content)
	}
	if resp.Usage.PromptTokens <= 0 || resp.Usage.CompletionTokens <= 0 || resp.Usage.CompletionTokens > 8 {
		t.Fatalf("usage %+v", resp.Usage)
	}
	// Streaming through the gateway yields the same greedy text.
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	st := c.Chat.Completions.NewStreaming(ctx, params)
	var text strings.Builder
	var streamed openai.CompletionUsage
	for st.Next() {
		ch := st.Current()
		if len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
		}
		if ch.Usage.TotalTokens > 0 {
			streamed = ch.Usage
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != resp.Choices[0].Message.Content {
		t.Fatalf("stream %q != plain %q", text.String(), resp.Choices[0].Message.Content)
	}
	if streamed.CompletionTokens != resp.Usage.CompletionTokens {
		t.Fatalf("stream usage %+v, plain %+v", streamed, resp.Usage)
	}
}

// TestModelFlag serves a GGUF file given with --model and no demo beside it;
// a file that is not a model stops serve with an error naming it.
func TestModelFlag(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kjv-copy.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.WriteDemo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	s := llmctltest.Start(t, llmctltest.Options{Args: []string{"--model", path, "--engine-threads", "1"}})
	c := client(s, s.AdminKey)
	ctx := ctxT(t)
	models, err := c.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models.Data) != 1 || models.Data[0].ID != "kjv-copy" {
		t.Fatalf("models = %+v, want only kjv-copy", models.Data)
	}
	resp, err := c.Completions.New(ctx, openai.CompletionNewParams{Model: "kjv-copy", MaxTokens: openai.Int(4),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("the sea")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Text == "" || resp.Usage.CompletionTokens == 0 {
		t.Fatalf("answer %+v", resp)
	}

	bad := filepath.Join(dir, "junk.gguf")
	if err := os.WriteFile(bad, []byte("not a model"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := llmctltest.Run(t, "serve", "--listen", "127.0.0.1:0", "--admin-listen", "off",
		"--db", "sqlite:"+filepath.Join(dir, "x.db"), "--model", bad)
	if err == nil || !strings.Contains(errOut, "junk.gguf") {
		t.Fatalf("bad --model: err=%v stderr=%s", err, errOut)
	}
}

// TestPresetAdminKey is the chart's path: LLMCTL_ADMIN_KEY (from a Secret) is
// imported as the admin key on every start, never printed; a malformed one
// stops serve without echoing it.
func TestPresetAdminKey(t *testing.T) {
	preset := "sk-llm-presetkeyabc_" + strings.Repeat("k", 52)
	db := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")
	for i := 0; i < 2; i++ { // a restart (or a second replica) must be harmless
		s := llmctltest.Start(t, llmctltest.Options{DB: db, Env: []string{"LLMCTL_ADMIN_KEY=" + preset}})
		if s.AdminKey != "" || strings.Contains(s.Stdout(), preset) || strings.Contains(s.Stderr(), preset) {
			t.Fatalf("start %d printed or logged the preset key", i)
		}
		c := client(s, preset)
		if _, err := c.Models.List(ctxT(t)); err != nil {
			t.Fatalf("start %d: preset key rejected: %v", i, err)
		}
		if err := s.Stop(t, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	bad := "sk-llm-NOTVALID_secretvalue"
	cmd := exec.Command(llmctltest.Binary(t), "serve", "--listen", "127.0.0.1:0", "--admin-listen", "off", "--db", db)
	cmd.Env = append(os.Environ(), "LLMCTL_ADMIN_KEY="+bad)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "LLMCTL_ADMIN_KEY") || strings.Contains(string(out), "secretvalue") {
		t.Fatalf("malformed LLMCTL_ADMIN_KEY: err=%v output=%s", err, out)
	}
}
