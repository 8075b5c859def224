package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/llmctltest"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
)

// rawPost sends body with key (if any) and decodes an OpenAI-shaped error.
func rawPost(t *testing.T, url, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("status %d: body is not an OpenAI error: %v", resp.StatusCode, err)
	}
	if e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("status %d: error lacks message/type: %+v", resp.StatusCode, e)
	}
	code := ""
	if e.Error.Code != nil {
		code = *e.Error.Code
	}
	return resp.StatusCode, code
}

// TestErrorStatuses walks every error status the gateway promises.
func TestErrorStatuses(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a", Models: []string{model, "embed-model"}})
	cfg := writeConfig(t, `
timeouts:
  firstByte: 400ms
backends:
  - name: a
    url: `+d.URL()+`
  - name: dead
    url: http://127.0.0.1:1
    models: [dead-model]
`)
	db := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")
	s := llmctltest.Start(t, llmctltest.Options{DB: db, Args: []string{"--config", cfg, "--max-body-bytes", "2048"}})
	c := client(s, s.AdminKey)
	ctx := ctxT(t)
	chatURL := s.URL + "/v1/chat/completions"
	ok := `{"model":"double-model","messages":[{"role":"user","content":"hi"}]}`

	t.Run("401 missing key", func(t *testing.T) {
		if st, code := rawPost(t, chatURL, "", ok); st != 401 || code != "invalid_api_key" {
			t.Fatalf("%d %s", st, code)
		}
	})
	t.Run("401 bad key", func(t *testing.T) {
		bad := client(s, "sk-llm-nosuchkey_secret")
		_, err := bad.Chat.Completions.New(ctx, chat("hi"))
		apiErr(t, err, 401, "invalid_api_key")
	})
	t.Run("401 revoked within a second", func(t *testing.T) {
		id, key := createKey(t, db)
		kc := client(s, key)
		if _, err := kc.Chat.Completions.New(ctx, chat("hi")); err != nil {
			t.Fatal(err) // now cached
		}
		llmctl(t, db, "keys", "revoke", id)
		revoked := time.Now()
		for {
			_, err := kc.Chat.Completions.New(ctx, chat("hi"))
			if err != nil {
				apiErr(t, err, 401, "invalid_api_key")
				t.Logf("revoke took effect after %s", time.Since(revoked))
				return
			}
			if time.Since(revoked) > 10*time.Second {
				t.Fatal("revoked key still accepted after 10s")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Run("401 expired", func(t *testing.T) {
		_, key := createKey(t, db, "--expires", "1s")
		time.Sleep(1100 * time.Millisecond)
		kc := client(s, key)
		_, err := kc.Chat.Completions.New(ctx, chat("hi"))
		apiErr(t, err, 401, "invalid_api_key")
	})
	t.Run("403 model not allowed", func(t *testing.T) {
		_, key := createKey(t, db, "--models", "embed-model")
		kc := client(s, key)
		_, err := kc.Chat.Completions.New(ctx, chat("hi"))
		apiErr(t, err, 403, "model_not_allowed")
	})
	t.Run("404 unknown model", func(t *testing.T) {
		p := chat("hi")
		p.Model = "no-such-model"
		_, err := c.Chat.Completions.New(ctx, p)
		apiErr(t, err, 404, "model_not_found")
	})
	t.Run("400 bad JSON and fields", func(t *testing.T) {
		for _, body := range []string{`{"model":`, `{"messages":[{"role":"user"}]}`, `{"model":"double-model"}`,
			`{"model":"double-model","max_tokens":-3,"messages":[{"role":"user"}]}`, `{"model":"double-model","stream":"no","messages":[]}`} {
			if st, _ := rawPost(t, chatURL, s.AdminKey, body); st != 400 {
				t.Errorf("%s → %d, want 400", body, st)
			}
		}
	})
	t.Run("413 body too large", func(t *testing.T) {
		big := `{"model":"double-model","messages":[{"role":"user","content":"` + strings.Repeat("x", 4096) + `"}]}`
		if st, code := rawPost(t, chatURL, s.AdminKey, big); st != 413 || code != "request_too_large" {
			t.Fatalf("%d %s", st, code)
		}
	})
	t.Run("502 backend error", func(t *testing.T) {
		_, err := c.Chat.Completions.New(ctx, chat("hi status=500"))
		apiErr(t, err, 502, "backend_error")
	})
	t.Run("502 backend overloaded", func(t *testing.T) {
		_, err := c.Chat.Completions.New(ctx, chat("hi status=429"))
		apiErr(t, err, 502, "backend_error")
	})
	t.Run("503 no healthy backend", func(t *testing.T) {
		p := chat("hi")
		p.Model = "dead-model"
		_, err := c.Chat.Completions.New(ctx, p)
		apiErr(t, err, 503, "no_backend")
	})
	t.Run("504 backend timeout", func(t *testing.T) {
		_, err := c.Chat.Completions.New(ctx, chat("hi delay=3s"), reqID("e2e-timeout"))
		apiErr(t, err, 504, "backend_timeout")
		// The upstream request was abandoned, not left running.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := d.Wait(wctx, "e2e-timeout", func(r upstreamdouble.Record) bool { return r.Canceled }); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("405 wrong method", func(t *testing.T) {
		resp, err := http.Get(chatURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 {
			t.Fatalf("GET chat = %d", resp.StatusCode)
		}
	})
	t.Run("upstream 4xx passes through", func(t *testing.T) {
		_, err := c.Chat.Completions.New(ctx, chat("hi status=400"))
		apiErr(t, err, 400, "")
	})
	t.Run("request id echoed or generated", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, chatURL, bytes.NewBufferString(ok))
		req.Header.Set("Authorization", "Bearer "+s.AdminKey)
		req.Header.Set("X-Request-Id", "mine-123")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Request-Id") != "mine-123" {
			t.Fatalf("X-Request-Id = %q", resp.Header.Get("X-Request-Id"))
		}
		// The access line is written just after the answer: give it a moment.
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(s.Stderr(), "request_id=mine-123"); {
			if time.Now().After(deadline) {
				t.Fatal("request id not in the access log")
			}
			time.Sleep(10 * time.Millisecond)
		}
		resp2, err := http.Get(s.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp2.Body.Close()
		if len(resp2.Header.Get("X-Request-Id")) != 32 {
			t.Fatalf("generated id %q", resp2.Header.Get("X-Request-Id"))
		}
	})
}
