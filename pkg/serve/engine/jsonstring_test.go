package engine

import (
	"encoding/json"
	"testing"
)

// TestJSONStringMatchesUnmarshal: the fast path reads strings exactly as
// encoding/json does, and falls back for everything else.
func TestJSONStringMatchesUnmarshal(t *testing.T) {
	for _, raw := range []string{`""`, `"plain text"`, `"é 🦙"`, `"a\"b\\c\n\u00e9"`, "\"bad \xff utf8\"", `["a"]`, `5`, `{"a":1}`} {
		var want string
		wantErr := json.Unmarshal([]byte(raw), &want)
		got, ok := jsonString(json.RawMessage(raw))
		if ok != (wantErr == nil) || got != want {
			t.Errorf("%q: got %q %v, encoding/json %q %v", raw, got, ok, want, wantErr)
		}
	}
}
