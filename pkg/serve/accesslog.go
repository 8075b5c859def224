package serve

import (
	"context"
	"log/slog"
	"time"
)

// accessLog writes a request's access-log line: ids, sizes and outcome,
// never the key, never the body. It writes what
//
//	log.LogAttrs(ctx, lvl, "request", request_id, method, route, model,
//		status, backend, tenant, key_id, prompt_tokens, completion_tokens,
//		bytes, duration)
//
// wrote, byte for byte (TestAccessLogSameAsLogAttrs), without its two costs
// per request: the caller's program counter (a stack walk; no handler of
// ours prints the source), and the allocation for the attributes a Record
// cannot hold inline (it holds five): the last eight go in one group with
// an empty key, which handlers write inline, kept in the request's own
// state.
func accessLog(ctx context.Context, log *slog.Logger, lvl slog.Level, method string, st *reqState, bytes int64, d time.Duration) {
	h := log.Handler()
	if !h.Enabled(ctx, lvl) {
		return
	}
	st.logTail = [8]slog.Attr{
		slog.Int("status", st.status), slog.String("backend", st.backend),
		slog.String("tenant", st.tenant), slog.String("key_id", st.keyID),
		slog.Int64("prompt_tokens", st.usage.PromptTokens), slog.Int64("completion_tokens", st.usage.CompletionTokens),
		slog.Int64("bytes", bytes), slog.Duration("duration", d),
	}
	rec := slog.NewRecord(time.Now(), lvl, "request", 0)
	rec.AddAttrs(slog.String("request_id", st.id), slog.String("method", method), slog.String("route", st.route),
		slog.String("model", st.model), slog.Attr{Value: slog.GroupValue(st.logTail[:]...)})
	_ = h.Handle(ctx, rec) // as Logger does: a failing log write fails nothing else
}
