package engine

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/llmctl/llmctl/pkg/serve/engine/tokenizer"
)

// promptTokens tokenizes a request's prompt for a context of ctxSize
// tokens, doing work bounded by the context rather than by the prompt: a
// prompt with more bytes than ctxSize of the vocabulary's longest pieces
// could hold is refused before tokenizing, and otherwise tokenizing stops
// once the context is exceeded. Any key holder can send megabytes, and
// tokenizing them all before refusing costs seconds of CPU (docs/benchmarks.md).
// param names the request field the prompt came from ("messages" or
// "prompt"); parseSpecial is as for tokenizer.Encode.
func promptTokens(tok *tokenizer.Tokenizer, ctxSize int, prompt string, parseSpecial bool, param string) ([]int32, error) {
	if least := leastTokens(tok, len(prompt)); least >= ctxSize {
		what := "the prompt is"
		if param == "messages" {
			what = "the messages, in the model's chat format, are"
		}
		return nil, tooLong(param, "%s %d bytes, at least %d tokens; this model's context holds %d tokens, prompt and answer together",
			what, len(prompt), least, ctxSize)
	}
	// One token must stay free for the answer.
	toks, ok := tok.EncodeLimit(prompt, true, parseSpecial, ctxSize-1)
	if !ok {
		return nil, tooLong(param, "the prompt is more than %d tokens; this model's context holds %d tokens, prompt and answer together",
			ctxSize-1, ctxSize)
	}
	return toks, nil
}

// leastTokens is the fewest tokens an n-byte prompt can encode to (BOS
// included), or 0 when the vocabulary gives no bound.
func leastTokens(tok *tokenizer.Tokenizer, n int) int {
	p := tok.MaxPieceBytes()
	if p == 0 {
		return 0
	}
	least := (n + p - 1) / p
	if tok.AddBOS {
		least++
	}
	return least
}

// jsonString decodes raw, a value the request's decode already checked,
// when it is a JSON string. A string without escapes is its bytes between
// the quotes (when valid UTF-8, which encoding/json would otherwise
// rewrite): one fast scan instead of encoding/json's two more, which
// matters for megabyte prompts that are about to be refused.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		if in := raw[1 : len(raw)-1]; bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
			return string(in), true
		}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}
