package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/serve/engine/internal/llamaref"
)

// The popular families whose real templates (from the llama.cpp source the
// reference is built from) must render byte for byte as @huggingface/jinja
// renders them.
var referenceTemplates = []string{
	"meta-llama-Llama-3.1-8B-Instruct",
	"meta-llama-Llama-3.2-3B-Instruct",
	"meta-llama-Llama-3.3-70B-Instruct",
	"Qwen-Qwen2.5-7B-Instruct",
	"Qwen-Qwen3-0.6B",
	"Qwen-QwQ-32B",
	"mistralai-Mistral-Nemo-Instruct-2407",
	"Mistral-Small-3.2-24B-Instruct-2506",
	"google-gemma-2-2b-it",
	"microsoft-Phi-3.5-mini-instruct",
	"deepseek-ai-DeepSeek-R1-Distill-Llama-8B",
	"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
	"deepseek-ai-DeepSeek-V3.1",
	"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use",
	"NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
	"ibm-granite-granite-3.3-2B-Instruct",
	"HuggingFaceTB-SmolLM3-3B",
	"openai-gpt-oss-120b",
	"CohereForAI-c4ai-command-r7b-12-2024-tool_use",
	"unsloth-mistral-Devstral-Small-2507",
}

const weatherTools = `[{"type":"function","function":{"name":"get_weather","description":"Current weather in a city","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name"},"unit":{"type":"string","enum":["c","f"]}},"required":["city"]}}}]`

// referenceConversations covers a lone user turn, a system prompt with
// several turns, and a tool call with its result. Raw messages carry the
// fields beyond role and content; content lists are flattened as the engine
// does before rendering.
var referenceConversations = []struct {
	name  string
	raw   []string
	tools string
	gen   bool
}{
	{"user", []string{`{"role":"user","content":"Hi there"}`}, "", true},
	{"multi-turn", []string{
		`{"role":"system","content":"Be brief."}`,
		`{"role":"user","content":"Hi"}`,
		`{"role":"assistant","content":"Hello."}`,
		`{"role":"user","content":[{"type":"text","text":"Bye "},{"type":"text","text":"now"}]}`,
	}, "", true},
	{"finished", []string{
		`{"role":"user","content":"Say ok"}`,
		`{"role":"assistant","content":"ok"}`,
	}, "", false},
	{"tools", []string{
		`{"role":"system","content":"You can call tools."}`,
		`{"role":"user","content":"Weather in Paris?"}`,
		`{"role":"assistant","content":null,"tool_calls":[{"id":"call12345","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"unit\":\"c\"}"}}]}`,
		`{"role":"tool","tool_call_id":"call12345","name":"get_weather","content":"18 C, sunny"}`,
	}, weatherTools, true},
	{"tools offered", []string{`{"role":"user","content":"Weather in Oslo?"}`}, weatherTools, true},
}

var referenceNow = time.Date(2024, 7, 26, 10, 0, 0, 0, time.UTC)

// conversation builds the Conversation and the variables the reference
// renders, as JSON text so that key order survives (Go maps would sort it).
// The reference normalizes the messages as the engine does (hfrender.mjs).
func conversation(t *testing.T, raw []string, tools string, gen bool) (Conversation, json.RawMessage) {
	t.Helper()
	c := Conversation{Tools: json.RawMessage(tools), AddGenerationPrompt: gen, Now: referenceNow}
	for _, r := range raw {
		var m struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal([]byte(r), &m); err != nil {
			t.Fatal(err)
		}
		var content string
		if err := json.Unmarshal(m.Content, &content); err != nil {
			var parts []struct{ Text string }
			_ = json.Unmarshal(m.Content, &parts)
			for _, p := range parts {
				content += p.Text
			}
		}
		c.Messages = append(c.Messages, Message{Role: m.Role, Content: content})
		c.Raw = append(c.Raw, json.RawMessage(r))
	}
	if tools == "" {
		tools = "null"
	}
	vars := fmt.Sprintf(`{"messages":[%s],"tools":%s,"add_generation_prompt":%t,"bos_token":"<s>","eos_token":"</s>"}`,
		strings.Join(raw, ","), tools, gen)
	return c, json.RawMessage(vars)
}

type refCase struct {
	Template string          `json:"template"`
	Vars     json.RawMessage `json:"vars"`
	Now      string          `json:"now"`
}

type refResult struct {
	Out   string `json:"out"`
	Error string `json:"error"`
}

// renderReference renders every case with @huggingface/jinja (prepared by
// `make llamaref`) in one node process.
func renderReference(t *testing.T, cases []refCase) []refResult {
	t.Helper()
	dir := llamaref.Dir(t)
	lib := filepath.Join(dir, "hfjinja", "dist", "index.js")
	if _, err := os.Stat(lib); err != nil {
		testenv.Unavailable(t, "@huggingface/jinja not prepared (run `make llamaref`): %v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Unavailable(t, "node is needed to run the reference chat-template renderer: %v", err)
	}
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), node, "testdata/hfrender.mjs", lib)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference renderer: %v\n%s", err, stderr.String())
	}
	var res []refResult
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(cases) {
		t.Fatalf("reference renderer answered %d results for %d cases: %v", len(res), len(cases), err)
	}
	return res
}

// TestTemplatesMatchReference renders real chat templates of popular model
// families for several conversations and compares the prompts byte for
// byte with an independent Jinja implementation. Where the reference
// refuses a conversation (a template's raise_exception, say Gemma's "System
// role not supported"), ours must refuse it too.
func TestTemplatesMatchReference(t *testing.T) {
	tdir := filepath.Join(llamaref.Dir(t), "llama.cpp", "models", "templates")
	type one struct {
		name string
		tmpl *Template
		conv Conversation
	}
	var ours []one
	var cases []refCase
	for _, name := range referenceTemplates {
		src, err := os.ReadFile(filepath.Join(tdir, name+".jinja"))
		if err != nil {
			t.Fatalf("template %s missing from the llama.cpp source: %v", name, err)
		}
		tmpl, err := Compile(string(src), "<s>", "</s>")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, rc := range referenceConversations {
			c, vars := conversation(t, rc.raw, rc.tools, rc.gen)
			ours = append(ours, one{name + "/" + rc.name, tmpl, c})
			cases = append(cases, refCase{string(src), vars, referenceNow.Format(time.RFC3339)})
		}
	}
	ref := renderReference(t, cases)
	matched, refused, lenient := 0, 0, 0
	for i, o := range ours {
		got, err := o.tmpl.Render(o.conv)
		switch {
		case ref[i].Error != "":
			// The reference is stricter than Python's Jinja in places (it
			// will not iterate None), so ours may render what it refuses;
			// a refusal must still be an ErrTemplate.
			if err == nil {
				lenient++
				t.Logf("%s: the reference refused (%s), ours rendered", o.name, ref[i].Error)
			} else if !errors.Is(err, ErrTemplate) {
				t.Errorf("%s: error does not wrap ErrTemplate: %v", o.name, err)
			} else {
				refused++
			}
		case err != nil:
			t.Errorf("%s: %v (reference rendered %q)", o.name, err, ref[i].Out)
		case got != ref[i].Out:
			t.Errorf("%s: differs from the reference at byte %d\n got %q\nwant %q", o.name, firstDiff(got, ref[i].Out), got, ref[i].Out)
		default:
			matched++
		}
	}
	t.Logf("%d renders identical to @huggingface/jinja, %d refused by both, %d refused by the reference only, of %d",
		matched, refused, lenient, len(ours))
	if matched < len(ours)*3/4 {
		t.Errorf("only %d of %d conversations rendered identically; the table no longer tests much", matched, len(ours))
	}
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestTojsonMatchesReference: the tojson filter with each of its options
// (indent, sort_keys, ensure_ascii, separators), in expressions, set
// statements and macros, renders as @huggingface/jinja renders it; "|
// tojson" in literal text and string literals stays as written.
func TestTojsonMatchesReference(t *testing.T) {
	value := `{"zeta":1,"alpha":{"b":[1,2,{"y":null,"x":true}],"a":"<tag> & \"q\" \\ \u00e9 \u65e5\u672c \ud83d\ude00 \u2028 \u007f \u0001"},"Beta":[],"empty":{},"n":-3,"f":2.5}`
	lower := `{"zeta":{"b":1,"a":[{"d":2,"c":3}]},"alpha":"x","m1":null,"m0":[]}` // sort_keys: keys the reference's localeCompare orders as Python does
	templates := []struct{ tmpl, value string }{
		{`{{ tools[0] | tojson }}`, value},
		{`{{ tools[0]|tojson(indent=2) }}`, value},
		{`{{ tools[0] | tojson(indent=4) }}`, lower},
		{`{{ tools[0] | tojson(sort_keys=true) }}`, lower},
		{`{{ tools[0] | tojson(indent=4, sort_keys=True) }}`, lower},
		{`{{ tools[0] | tojson(ensure_ascii=true) }}`, value},
		{`{{ tools[0] | tojson(separators=(',', ':')) }}`, value},
		{`{{ tools[0] | tojson(indent=2, separators=(', ', ' = ')) }}`, value},
		{`{% set s = tools[0] | tojson %}[{{ s }}]`, value},
		{`{% macro m(v) %}{{ v | tojson(indent=1) }}{% endmacro %}{{ m(tools[0]) }}`, value},
		{`text | tojson {{ 'a | tojson' }} {# x | tojson #}{{ "b|tojson" ~ (tools[0].n | tojson) }}`, value},
		{`{{ [] | tojson(indent=2) }}{{ {} | tojson(indent=2) }}{{ tools[0].alpha.b | tojson(indent=3) }}`, value},
	}
	var cases []refCase
	var ours []string
	for _, tc := range templates {
		tmpl, err := Compile(tc.tmpl, "<s>", "</s>")
		if err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		tools := "[" + tc.value + "]"
		got, err := tmpl.Render(Conversation{Tools: json.RawMessage(tools), Now: referenceNow})
		if err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		ours = append(ours, got)
		cases = append(cases, refCase{tc.tmpl, json.RawMessage(`{"messages":[],"tools":` + tools + `}`), referenceNow.Format(time.RFC3339)})
	}
	ref := renderReference(t, cases)
	for i, tc := range templates {
		if ref[i].Error != "" || ours[i] != ref[i].Out {
			t.Errorf("%s:\n got %q\nwant %q %s", tc.tmpl, ours[i], ref[i].Out, ref[i].Error)
		}
	}
}

// TestTojsonPython: where the reference (JavaScript) differs from Python's
// json.dumps, which transformers renders templates with, ours follows
// Python: keys sort by code point, floats print as repr prints them.
func TestTojsonPython(t *testing.T) {
	tmpl, err := Compile(`{{ tools[0] | tojson(sort_keys=true) }}`, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		`{"b":1,"B":2,"_":3,"a":4}`:                     `{"B": 2, "_": 3, "a": 4, "b": 1}`,
		`[1.0,2.5,1e-5,0.0001,1e16,123456789.125,-0.0]`: `[1.0, 2.5, 1e-05, 0.0001, 1e+16, 123456789.125, -0.0]`,
	} {
		got, err := tmpl.Render(Conversation{Tools: json.RawMessage("[" + in + "]")})
		if err != nil || got != want {
			t.Errorf("%s: got %q (%v), want %q", in, got, err, want)
		}
	}
}

// FuzzRewriteTojson: renaming the filter changes nothing but "tojson" after
// a "|" inside tags: the text with the new name put back is the original.
func FuzzRewriteTojson(f *testing.F) {
	f.Add(`a | tojson {{ x | tojson(indent=2) }}{% set y = z|tojson %}{# | tojson #}{{ '|tojson' }}{% raw %}{{ x|tojson }}{% endraw %}`)
	f.Add(`{{ x |` + "\n" + `tojson_other }}{{ "a\"|tojson" | tojson }}{%`)
	f.Fuzz(func(t *testing.T, src string) {
		out := rewriteTojson(src)
		if back := strings.ReplaceAll(out, tojsonName, "tojson"); back != strings.ReplaceAll(src, tojsonName, "tojson") {
			t.Fatalf("rewrite of %q changed more than the filter name: %q", src, out)
		}
	})
}

func TestRenderRaiseException(t *testing.T) {
	tmpl, err := Compile(`{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok`, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tmpl.Render(Conversation{Messages: []Message{{"system", "x"}}})
	if !errors.Is(err, ErrTemplate) || !strings.Contains(err.Error(), "System role not supported") {
		t.Fatalf("got %v", err)
	}
}

func TestStrftime(t *testing.T) {
	at := time.Date(2024, 7, 6, 15, 4, 5, 0, time.UTC)
	for f, want := range map[string]string{
		"%d %b %Y":         "06 Jul 2024",
		"%B %d, %Y":        "July 06, 2024",
		"%Y-%m-%d %H:%M":   "2024-07-06 15:04",
		"today 2006 %% %":  "today 2006 % %",
		"%A %a %j %I%p %Q": "Saturday Sat 188 03PM %Q",
	} {
		if got := Strftime(at, f); got != want {
			t.Errorf("Strftime(%q) = %q, want %q", f, got, want)
		}
	}
}

// FuzzTemplateInput: whatever a request sends (message content, the raw
// message object, tools) either renders through real templates or fails
// with ErrTemplate; never a panic. The template text itself comes from the
// operator's model file, not from requests.
func FuzzTemplateInput(f *testing.F) {
	srcs := []string{
		`{%- set ns = namespace(n=0) -%}{%- for m in messages -%}{%- set ns.n = loop.index -%}<|{{ m.role }}|>{{ m.content | trim }}{% if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function.name }}{{ c.function.arguments | tojson }}{% endfor %}{% endif %}{%- endfor -%}{%- if tools -%}{{ tools | tojson }}{{ tools | length }}{%- endif -%}{{ ns.n }}`,
		`{%- if messages[0]['role'] == 'system' -%}{{ raise_exception('no system') }}{%- endif -%}{{ bos_token }}{% for m in messages %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}{{ strftime_now('%d %b %Y') }}`,
	}
	var tmpls []*Template
	for _, s := range srcs {
		t, err := Compile(s, "<s>", "</s>")
		if err != nil {
			f.Fatal(err)
		}
		tmpls = append(tmpls, t)
	}
	f.Add("hi", `{"role":"user","content":"hi"}`, weatherTools)
	f.Add("", `{"role":"assistant","content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\":[1,2.5,true,null]}"}}]}`, `null`)
	f.Add("{{x}}", `{"role":"tool","tool_call_id":7}`, `[1`)
	f.Add("x", `[]`, `[{"a":{}}]`)
	f.Fuzz(func(t *testing.T, content, raw, tools string) {
		for _, tmpl := range tmpls {
			_, err := tmpl.Render(Conversation{
				Messages: []Message{{"user", content}}, Raw: []json.RawMessage{json.RawMessage(raw)},
				Tools: json.RawMessage(tools), AddGenerationPrompt: true,
			})
			if err != nil && !errors.Is(err, ErrTemplate) {
				t.Fatalf("render error does not wrap ErrTemplate: %v", err)
			}
		}
	})
}
