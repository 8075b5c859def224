package config

import (
	"strings"
	"testing"
)

func TestContextFallbacksSection(t *testing.T) {
	c := Defaults("sqlite:x.db")
	if err := c.MergeFile("serve.yaml", strings.NewReader("contextFallbacks: {qwen-8k: [qwen-32k, qwen-128k]}\n")); err != nil {
		t.Fatal(err)
	}
	if got := c.ContextFallbacks["qwen-8k"]; len(got) != 2 || got[1] != "qwen-128k" || c.Validate() != nil {
		t.Fatalf("contextFallbacks %v, Validate %v", c.ContextFallbacks, c.Validate())
	}
	c.ContextFallbacks = map[string][]string{"m": {"m", " "}}
	err := c.Validate()
	for _, want := range []string{"contextFallbacks.m[0]: a model cannot be its own fallback", "contextFallbacks.m[1]: must name a model"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}
