package serve

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeFast: wherever a fast path takes a value, encoding/json reads
// the same value from it; and appendJSONString writes what json.Marshal
// writes.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range []string{`"gpt-4o"`, `"caf\u00e9"`, `"é"`, `"a\"b"`, `true`, `false`, `null`, `0`, `-0`, `007`,
		`128`, `-5`, `9223372036854775807`, `9223372036854775808`, `1e3`, `1.0`, `"<&>"`, "\"\xff\"", `""`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return // decodeFast only ever sees values the body's decode accepted
		}
		raw = bytes.TrimSpace(raw) // as a json.RawMessage from a decode holds it
		var s, sj string
		if decodeFast(raw, &s) {
			if err := json.Unmarshal(raw, &sj); err != nil || s != sj {
				t.Fatalf("string %q: fast %q, encoding/json %q (%v)", raw, s, sj, err)
			}
		}
		var b, bj bool
		if decodeFast(raw, &b) {
			if err := json.Unmarshal(raw, &bj); err != nil || b != bj {
				t.Fatalf("bool %q: fast %v, encoding/json %v (%v)", raw, b, bj, err)
			}
		}
		var n, nj *int64
		if decodeFast(raw, &n) {
			if err := json.Unmarshal(raw, &nj); err != nil || nj == nil || *n != *nj {
				t.Fatalf("int %q: fast %d, encoding/json %v (%v)", raw, *n, nj, err)
			}
		}
		str := string(raw)
		want, _ := json.Marshal(str)
		if got := appendJSONString(nil, str); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %s, json.Marshal %s", str, got, want)
		}
	})
}
