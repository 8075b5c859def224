package engine

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/llmctl/llmctl/pkg/serve/engine/chat"
)

// chatPrompt renders a chat request's messages into the prompt text: with
// the model's own template when it has one, else the hand-written format.
func (b *Backend) chatPrompt(r *request) (string, error) {
	msgs := make([]chat.Message, len(r.Messages))
	raw := make([]json.RawMessage, len(r.Messages))
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "user", "assistant", "developer", "tool":
		default:
			return "", badParam("messages", "message %d has role %q; the roles are system, developer, user, assistant and tool", i, m.Role)
		}
		t, err := m.text()
		if err != nil {
			return "", err
		}
		msgs[i] = chat.Message{Role: m.Role, Content: t}
		raw[i] = m.raw
	}
	if b.tmpl == nil {
		// Without a template: tools in a system turn, past calls as the
		// JSON the model is asked to write.
		for i := range msgs {
			if msgs[i].Role == "assistant" && msgs[i].Content == "" {
				msgs[i].Content = toolCallsJSON(raw[i])
			}
		}
		if len(r.Tools) > 0 {
			msgs = append([]chat.Message{{Role: "system", Content: toolsSystemPrompt(r.Tools)}}, msgs...)
		}
		prompt, err := chat.Render(b.format, msgs)
		if err != nil {
			return "", badParam("messages", "%v", err)
		}
		return prompt, nil
	}
	prompt, err := b.tmpl.Render(chat.Conversation{Messages: msgs, Raw: raw, Tools: r.Tools, AddGenerationPrompt: true})
	if err != nil {
		// The template's own refusals (raise_exception) are written for
		// users ("Conversation roles must alternate user/assistant/...").
		msg := strings.TrimPrefix(err.Error(), chat.ErrTemplate.Error()+": ")
		if errors.Is(err, chat.ErrTemplate) {
			return "", badParam("messages", "this model's chat template cannot render these messages: %s", msg)
		}
		return "", err
	}
	// The tokenizer adds BOS itself; most templates print bos_token too.
	if b.tok.AddBOS {
		if bos := string(b.tok.Piece(b.tok.BOS, true)); bos != "" {
			prompt = strings.TrimPrefix(prompt, bos)
		}
	}
	return prompt, nil
}
