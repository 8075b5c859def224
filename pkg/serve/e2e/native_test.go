package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/llmctl/llmctl/internal/llmctltest"
)

// TestNativeProtocolsFromConfig: a backend's protocols list in the config
// file reaches the gateway: its Messages requests and reranks are passed
// through (the backend's bytes reach the client) and charged in the ledger
// from the protocol's own usage.
func TestNativeProtocolsFromConfig(t *testing.T) {
	const (
		message = `{"id":"msg_native","type":"message","role":"assistant","model":"native-model","content":[{"type":"text","text":"native"}],` +
			`"stop_reason":"end_turn","usage":{"input_tokens":9,"cache_read_input_tokens":2,"output_tokens":6}}`
		ranked = `{"results":[{"index":0,"relevance_score":0.7}],"usage":{"prompt_tokens":23,"total_tokens":23}}`
	)
	var mu sync.Mutex
	var paths []string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/models":
			_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"native-model"}]}`)
			return
		case "/v1/messages":
			_, _ = io.WriteString(w, message)
		case "/v1/rerank":
			_, _ = io.WriteString(w, ranked)
		default:
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
	}))
	t.Cleanup(backend.Close)
	cfg := writeConfig(t, "backends:\n  - name: native\n    url: "+backend.URL+"\n    protocols: [chat, messages, rerank]\n")
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "llmctl.db")
	prices := filepath.Join(dir, "prices.yaml")
	if err := os.WriteFile(prices, []byte("models:\n  native-model: {input: 100000, output: 300000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := llmctltest.Start(t, llmctltest.Options{DB: db, Args: []string{"--config", cfg, "--prices", prices}})
	llmctl(t, db, "tenants", "create", "acme")
	llmctl(t, db, "ledger", "credit", "acme", "10", "--reason", "e2e")
	_, key := llmctltest.CreateKey(t, db, "acme")

	post := func(path, id, body string) string {
		req, _ := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("X-Request-Id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(resp)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, got)
		}
		return got
	}
	if got := post("/v1/messages", "n-msg", `{"model":"native-model","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`); got != message {
		t.Fatalf("messages: %s", got)
	}
	if got := post("/v1/rerank", "n-rr", `{"model":"native-model","query":"gpu","documents":["chip"]}`); got != ranked {
		t.Fatalf("rerank: %s", got)
	}
	ch := charges(t, db, "acme")
	if c := ch["n-msg"]; c.PromptTokens != 11 || c.CompletionTokens != 6 {
		t.Fatalf("messages charged %+v", c)
	}
	if c := ch["n-rr"]; c.PromptTokens != 23 || c.CompletionTokens != 0 {
		t.Fatalf("rerank charged %+v", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(paths, ",") != "/v1/messages,/v1/rerank" {
		t.Fatalf("the backend served %v", paths)
	}
}
