package serve

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Fast paths for the request fields every request carries (model, stream,
// max_tokens) and for the keys of the body sent upstream: encoding/json
// allocates a decoder or an encoder per call, several per request, for
// values whose plain form is read or written with a scan. Anything outside
// the plain form falls back to encoding/json, so the results (and the
// errors) are encoding/json's; FuzzDecodeFast checks both agree.

// decodeFast sets dst from raw, a value the body's decode already found to
// be valid JSON, when raw is in plain form; it reports whether it did.
func decodeFast(raw json.RawMessage, dst any) bool {
	switch d := dst.(type) {
	case *string:
		if s, ok := plainString(raw); ok {
			*d = s
			return true
		}
	case *bool:
		switch string(raw) {
		case "true":
			*d = true
			return true
		case "false":
			*d = false
			return true
		}
	case **int64:
		if n, ok := plainInt(raw); ok {
			*d = &n
			return true
		}
	}
	return false
}

// plainString is raw's string when raw is a JSON string without escapes in
// valid UTF-8 (which encoding/json would otherwise rewrite).
func plainString(raw []byte) (string, bool) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		if in := raw[1 : len(raw)-1]; bytes.IndexByte(in, '\\') < 0 && bytes.IndexByte(in, '"') < 0 && utf8.Valid(in) {
			return string(in), true
		}
	}
	return "", false
}

// plainInt is raw's value when raw is an optional minus and digits, without
// a leading zero, that fit an int64.
func plainInt(raw []byte) (int64, bool) {
	digits := raw
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	return n, err == nil
}

// appendJSONString appends s as encoding/json would marshal it.
func appendJSONString(out []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		// Plain printable ASCII, minus what encoding/json escapes.
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(out, b...)
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}
