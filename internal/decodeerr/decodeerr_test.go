package decodeerr

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestJSON(t *testing.T) {
	var v struct {
		Messages []struct {
			Role string `json:"role"`
		} `json:"messages"`
		N    int64         `json:"n"`
		Wait time.Duration `json:"wait"`
	}
	for doc, want := range map[string]string{
		`{"messages":[{"role":1}]}`: "messages.role: expected a string, got a number",
		`{"n":1.5}`:                 "n: expected an integer, got a number (1.5)",
		`{"n":"x"}`:                 "n: expected an integer, got a string",
		`{"messages":{}}`:           "messages: expected a list, got an object",
		`{"n":1,}`:                  "invalid JSON at byte 8: invalid character '}'",
		`[1]`:                       "expected an object, got an array",
	} {
		got := JSON(json.Unmarshal([]byte(doc), &v))
		if !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", doc, got, want)
		}
		if strings.Contains(got, "Go ") || strings.Contains(got, "struct") {
			t.Errorf("%s: %q speaks Go", doc, got)
		}
	}
}

func TestYAML(t *testing.T) {
	type cfg struct {
		Listen string        `yaml:"listen"`
		Grace  time.Duration `yaml:"grace"`
		Max    int64         `yaml:"max"`
	}
	for doc, want := range map[string]string{
		"dbb: x\n":      "line 1: unknown key dbb",
		"listen: [1]\n": "line 1: expected a string, got a list",
		"grace: abc\n":  "line 1: expected a duration such as 30s or 1m, got a string (abc)",
		"max: many\n":   "line 1: expected an integer, got a string (many)",
		"foo\n":         "line 1: expected a mapping, got a string (foo)",
		"a: 1\nb: [x\n": "did not find expected",
	} {
		var c cfg
		dec := yaml.NewDecoder(strings.NewReader(doc))
		dec.KnownFields(true)
		got := YAML(dec.Decode(&c))
		if !strings.Contains(got, want) {
			t.Errorf("%q: %q, want %q", doc, got, want)
		}
		if strings.Contains(got, "config.") || strings.Contains(got, "time.Duration") || strings.Contains(got, "!!") {
			t.Errorf("%q: %q speaks Go", doc, got)
		}
	}
}
