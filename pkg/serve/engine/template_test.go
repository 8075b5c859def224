package engine_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
)

// demoGGUF is the demo model's file, parsed.
func demoGGUF(t *testing.T) *gguf.File {
	t.Helper()
	var buf bytes.Buffer
	if err := engine.WriteDemo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// demoWithTemplate serves the demo model's weights and vocabulary from a
// file whose tokenizer.chat_template is tmpl.
func demoWithTemplate(t *testing.T, tmpl string) *engine.Backend {
	t.Helper()
	f := demoGGUF(t)
	var w gguf.Writer
	for _, kv := range f.KV {
		if kv.Key != "tokenizer.chat_template" && kv.Key != "general.alignment" {
			w.CopyKV(kv)
		}
	}
	w.Set("tokenizer.chat_template", tmpl)
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if err := w.AddTensor(ti.Name, ti.Type, ti.Dims, f.Data(ti)); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "demo-template.gguf")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(out); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := engine.Open(path, engine.Options{Name: "tmpl", Threads: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestChatUsesModelTemplate: with a template in the file, the prompt is
// what the template renders (bos_token stripped, the tokenizer adds BOS),
// tool-call arguments reach it as objects and the content parts joined.
func TestChatUsesModelTemplate(t *testing.T) {
	const tmpl = `{{ bos_token }}{% for m in messages %}{{ m.role | upper }}: {{ m.content | trim }}` +
		`{% if m.tool_calls %}{% for c in m.tool_calls %} call {{ c.function.name }} with city {{ c.function.arguments.city }}{% endfor %}{% endif %}` +
		"{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
	b := demoWithTemplate(t, tmpl)
	body := `{"messages":[{"role":"developer","content":"Answer as the preacher."},` +
		`{"role":"user","content":[{"type":"text","text":"  In the "},{"type":"text","text":"beginning  "}]},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"look","arguments":"{\"city\":\"Ur\"}"}}]}],` +
		`"max_tokens":3,"temperature":0}`
	a := do(t, b, serve.EndpointChat, body)
	want := "SYSTEM: Answer as the preacher.\nUSER: In the beginning\nASSISTANT:  call look with city Ur\nASSISTANT:"
	if n := int64(len(b.Tokenizer().Encode(want, true, true))); a.Usage.PromptTokens != n {
		t.Fatalf("prompt_tokens %d, want %d (the template's rendering %q)", a.Usage.PromptTokens, n, want)
	}
	if a.Usage.CompletionTokens == 0 {
		t.Fatal("no completion")
	}
}

// TestChatTemplateRefusal: the template's raise_exception and a template
// error are 400s on messages, in the template's words.
func TestChatTemplateRefusal(t *testing.T) {
	b := demoWithTemplate(t, `{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m.content }}{% endfor %}{{ no_such_function() }}`)
	for body, want := range map[string]string{
		`{"messages":[{"role":"system","content":"x"},{"role":"user","content":"y"}]}`: "System role not supported",
		`{"messages":[{"role":"user","content":"y"}]}`:                                 "chat template",
	} {
		_, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointChat, Body: []byte(body)})
		var re *engine.RequestError
		if !errors.As(err, &re) || re.Status != 400 || re.Param != "messages" || !strings.Contains(re.Message, want) {
			t.Errorf("%s: got %v, want a 400 on messages saying %q", body, err, want)
		}
	}
}

// TestChatTemplateDoesNotCompile: a file whose template the renderer cannot
// compile is served with the built-in format.
func TestChatTemplateDoesNotCompile(t *testing.T) {
	b := demoWithTemplate(t, `{% for m in messages %}{{ m.content }`)
	a := do(t, b, serve.EndpointChat, `{"messages":[{"role":"user","content":"In the beginning"}],"max_tokens":2,"temperature":0}`)
	if a.Usage.PromptTokens == 0 || a.Usage.CompletionTokens == 0 {
		t.Fatalf("usage %+v", a.Usage)
	}
}
