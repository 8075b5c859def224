package upstreamdouble

import (
	"encoding/json"
	"net/http"
	"time"
)

// ToolArguments are the arguments of every tool call the double makes; a
// stream delivers them in two pieces, split at toolSplit.
const (
	ToolArguments = `{"city":"Paris"}`
	toolSplit     = 8
)

// ToolCompletionTokens is the completion length of a tool call: the chunk
// naming the function and one per argument piece.
const ToolCompletionTokens = 3

// toolCall answers a chat request with one call to the function name
// (directive tool=NAME), plain or streamed, finish_reason "tool_calls".
func (d *Double) toolCall(w http.ResponseWriter, rec *Record, req request, name string) {
	id := "call_" + rec.RequestID
	args := ToolArguments
	u := usage(rec.PromptTokens, ToolCompletionTokens, 0)
	if !req.Stream {
		body, _ := json.Marshal(map[string]any{"id": "cmpl-" + rec.RequestID, "object": "chat.completion",
			"created": time.Now().Unix(), "model": req.Model, "usage": u,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "tool_calls", "message": map[string]any{
				"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{"id": id, "type": "function",
					"function": map[string]any{"name": name, "arguments": args}}}}}}})
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(body)
		d.update(rec, func(r *Record) {
			r.Status, r.Completed, r.Canceled = http.StatusOK, err == nil, err != nil
			if err == nil {
				r.CompletionTokens = ToolCompletionTokens
			}
		})
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	d.update(rec, func(r *Record) { r.Status = http.StatusOK })
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": "cmpl-" + rec.RequestID, "object": "chat.completion.chunk", "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	call := func(fn map[string]any, withID bool) map[string]any {
		tc := map[string]any{"index": 0, "function": fn}
		if withID {
			tc["id"], tc["type"] = id, "function"
		}
		return chunk(map[string]any{"tool_calls": []any{tc}}, nil)
	}
	events := []any{call(map[string]any{"name": name, "arguments": ""}, true)}
	for _, p := range []string{ToolArguments[:toolSplit], ToolArguments[toolSplit:]} {
		events = append(events, call(map[string]any{"arguments": p}, false))
	}
	events = append(events, chunk(map[string]any{}, "tool_calls"))
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		events = append(events, map[string]any{"id": "cmpl-" + rec.RequestID, "object": "chat.completion.chunk",
			"model": req.Model, "choices": []any{}, "usage": u})
	}
	for i, ev := range events {
		b, _ := json.Marshal(ev)
		if _, err := w.Write(append(append([]byte("data: "), b...), "\n\n"...)); err != nil || rc.Flush() != nil {
			d.update(rec, func(r *Record) { r.Canceled = true })
			return
		}
		if i < ToolCompletionTokens {
			d.update(rec, func(r *Record) { r.CompletionTokens++ })
		}
	}
	_, err := w.Write([]byte("data: [DONE]\n\n"))
	_ = rc.Flush()
	d.update(rec, func(r *Record) { r.Completed = err == nil })
}
