package chat

import "testing"

func TestDetect(t *testing.T) {
	none := func(string) bool { return false }
	for tmpl, want := range map[string]Format{
		"{% for m in messages %}<|im_start|>{{ m.role }}":                 ChatML,
		"{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>": Llama3,
		"{{ '<start_of_turn>' + role + '\n' }}":                           Gemma,
		"{{ bos_token + '[INST] ' + content + ' [/INST]' }}":              Llama2,
		"": Plain,
	} {
		if got := Detect(tmpl, none); got != want {
			t.Errorf("Detect(%q) = %s, want %s", tmpl, got, want)
		}
	}
	if got := Detect("", func(s string) bool { return s == "<|im_start|>" }); got != ChatML {
		t.Errorf("vocabulary fallback gave %s", got)
	}
}

func TestRender(t *testing.T) {
	msgs := []Message{{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}}
	for f, want := range map[Format]string{
		ChatML: "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
		Llama3: "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
		Gemma:  "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n",
		Llama2: "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Bye [/INST]",
		Plain:  "System: Be brief.\nUser: Hi\nAssistant: Hello.\nUser: Bye\nAssistant:",
	} {
		got, err := Render(f, msgs)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s:\n got %q\nwant %q", f, got, want)
		}
	}
	if _, err := Render(ChatML, []Message{{"wizard", "x"}}); err == nil {
		t.Error("unknown role accepted")
	}
}
