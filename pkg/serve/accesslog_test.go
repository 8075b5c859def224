package serve

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
)

// FuzzAccessLogSameAsLogAttrs checks accessLog against the call it
// replaced, Logger.LogAttrs with the same attributes, through the text
// handler `llmctl serve` logs with, the JSON handler and a grouped logger:
// the lines must be byte-identical (time left out: the two calls read the
// clock apart). Its seeds run in go test.
func FuzzAccessLogSameAsLogAttrs(f *testing.F) {
	f.Add("9f86d081884c7d659a2feaa0c55ad015", "POST", "chat", "llama-3-8b", "gpu-a", "t-acme", "k-01", 200, int64(31), int64(64), int64(812), int64(1500*time.Microsecond))
	f.Add("", "", "", "", "", "", "", 0, int64(0), int64(0), int64(0), int64(0))
	f.Add("id with space", "GET", "other", "m=\"quoted\"\n", "b\\x", "ténant", "k\x00", 503, int64(-1), int64(1<<62), int64(-5), int64(-time.Hour))
	f.Fuzz(func(t *testing.T, id, method, route, model, backend, tenant, keyID string, status int, prompt, completion, n, d int64) {
		st := &reqState{id: id, route: route, model: model, backend: backend, status: status, tenant: tenant, keyID: keyID,
			usage: billing.Usage{PromptTokens: prompt, CompletionTokens: completion}}
		dur := time.Duration(d)
		noTime := func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
		opts := &slog.HandlerOptions{ReplaceAttr: noTime, Level: slog.LevelDebug}
		for _, mk := range []struct {
			name string
			new  func(*bytes.Buffer) *slog.Logger
		}{
			{"text", func(b *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, opts)) }},
			{"json", func(b *bytes.Buffer) *slog.Logger { return slog.New(slog.NewJSONHandler(b, opts)) }},
			{"grouped", func(b *bytes.Buffer) *slog.Logger {
				return slog.New(slog.NewTextHandler(b, opts)).With("svc", "gw").WithGroup("g")
			}},
		} {
			for _, lvl := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
				var want, got bytes.Buffer
				ctx := context.Background()
				mk.new(&want).LogAttrs(ctx, lvl, "request",
					slog.String("request_id", st.id), slog.String("method", method), slog.String("route", st.route),
					slog.String("model", st.model), slog.Int("status", st.status), slog.String("backend", st.backend),
					slog.String("tenant", st.tenant), slog.String("key_id", st.keyID),
					slog.Int64("prompt_tokens", st.usage.PromptTokens), slog.Int64("completion_tokens", st.usage.CompletionTokens),
					slog.Int64("bytes", n), slog.Duration("duration", dur))
				accessLog(ctx, mk.new(&got), lvl, method, st, n, dur)
				if !bytes.Equal(got.Bytes(), want.Bytes()) {
					t.Fatalf("%s at %s:\n got %q\nwant %q", mk.name, lvl, got.Bytes(), want.Bytes())
				}
			}
		}
		// Below the handler's level, nothing at all.
		var quiet bytes.Buffer
		accessLog(context.Background(), slog.New(slog.NewTextHandler(&quiet, nil)), slog.LevelDebug, method, st, n, dur)
		if quiet.Len() != 0 {
			t.Fatalf("a debug line below level info was written: %q", quiet.Bytes())
		}
	})
}
