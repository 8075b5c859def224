package billing

import "testing"

func TestPrincipalAllows(t *testing.T) {
	all := Principal{}
	if !all.Allows("anything") {
		t.Error("a key with no model list must allow every model")
	}
	scoped := Principal{Models: []string{"a", "b"}}
	for m, want := range map[string]bool{"a": true, "b": true, "c": false, "": false} {
		if got := scoped.Allows(m); got != want {
			t.Errorf("Allows(%q) = %v, want %v", m, got, want)
		}
	}
	if (Usage{PromptTokens: 3, CompletionTokens: 4}).Total() != 7 {
		t.Error("Usage.Total")
	}
}
