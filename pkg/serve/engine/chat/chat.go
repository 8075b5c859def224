// Package chat renders OpenAI-style message lists into a model's prompt
// format. GGUF files carry a Jinja template (tokenizer.chat_template); rather
// than run Jinja, the common formats are recognised by their marker tokens
// and rendered by hand.
package chat

import (
	"fmt"
	"strings"
)

// Message is one chat turn.
type Message struct {
	Role    string
	Content string
}

// Format is a prompt format.
type Format string

// Supported formats.
const (
	ChatML Format = "chatml" // qwen2, many fine-tunes
	Llama3 Format = "llama3"
	Llama2 Format = "llama2" // also mistral's [INST]
	Gemma  Format = "gemma"
	Plain  Format = "plain" // "User: ...\nAssistant:" for models without a template
)

// Detect picks the format from the template text, falling back to marker
// tokens the vocabulary has (hasToken).
func Detect(template string, hasToken func(string) bool) Format {
	switch {
	case strings.Contains(template, "<|im_start|>"):
		return ChatML
	case strings.Contains(template, "<|start_header_id|>"):
		return Llama3
	case strings.Contains(template, "<start_of_turn>"):
		return Gemma
	case strings.Contains(template, "[INST]"):
		return Llama2
	}
	switch {
	case hasToken("<|im_start|>"):
		return ChatML
	case hasToken("<|start_header_id|>"):
		return Llama3
	case hasToken("<start_of_turn>"):
		return Gemma
	}
	return Plain
}

// Stops are the strings that end an assistant turn in format f (besides the
// model's end-of-generation tokens).
func (f Format) Stops() []string {
	switch f {
	case Plain:
		return []string{"\nUser:"}
	}
	return nil
}

// Render builds the prompt text, ending where the assistant's reply begins.
// The beginning-of-sequence token is not included (the tokenizer adds it).
func Render(f Format, msgs []Message) (string, error) {
	var b strings.Builder
	for _, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant", "developer", "tool":
		default:
			return "", fmt.Errorf("chat: unknown role %q", m.Role)
		}
	}
	switch f {
	case ChatML:
		for _, m := range msgs {
			fmt.Fprintf(&b, "<|im_start|>%s\n%s<|im_end|>\n", role(m.Role), m.Content)
		}
		b.WriteString("<|im_start|>assistant\n")
	case Llama3:
		for _, m := range msgs {
			fmt.Fprintf(&b, "<|start_header_id|>%s<|end_header_id|>\n\n%s<|eot_id|>", role(m.Role), strings.TrimSpace(m.Content))
		}
		b.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
	case Gemma:
		// Gemma has no system role: prepend it to the first user turn.
		var sys string
		for _, m := range msgs {
			r := role(m.Role)
			switch r {
			case "system":
				sys += m.Content + "\n\n"
				continue
			case "assistant":
				r = "model"
			}
			fmt.Fprintf(&b, "<start_of_turn>%s\n%s%s<end_of_turn>\n", r, sys, strings.TrimSpace(m.Content))
			sys = ""
		}
		b.WriteString("<start_of_turn>model\n")
	case Llama2:
		var sys string
		first := true
		for _, m := range msgs {
			switch role(m.Role) {
			case "system":
				sys += m.Content
			case "user":
				if !first {
					b.WriteString("<s>")
				}
				content := strings.TrimSpace(m.Content)
				if sys != "" {
					content = "<<SYS>>\n" + sys + "\n<</SYS>>\n\n" + content
					sys = ""
				}
				fmt.Fprintf(&b, "[INST] %s [/INST]", content)
				first = false
			case "assistant":
				fmt.Fprintf(&b, " %s </s>", strings.TrimSpace(m.Content))
			}
		}
	default:
		for _, m := range msgs {
			r := role(m.Role)
			fmt.Fprintf(&b, "%s%s: %s\n", strings.ToUpper(r[:1]), r[1:], m.Content)
		}
		b.WriteString("Assistant:")
	}
	return b.String(), nil
}

func role(r string) string {
	switch r {
	case "developer":
		return "system"
	case "tool":
		return "user"
	}
	return r
}
