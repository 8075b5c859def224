package serve

import (
	"strings"
	"testing"
)

func TestDecodeChoicesAndUser(t *testing.T) {
	long := strings.Repeat("u", 257)
	cases := []struct {
		name, body string
		ep         Endpoint
		param      string // "-" = no error
		choices    int64
		user       string
	}{
		{"defaults", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, EndpointChat, "-", 1, ""},
		{"n", `{"model":"m","n":3,"user":"alice","messages":[{"role":"user","content":"x"}]}`, EndpointChat, "-", 3, "alice"},
		{"best_of wins", `{"model":"m","n":2,"best_of":5,"prompt":"x"}`, EndpointCompletions, "-", 5, ""},
		{"n null", `{"model":"m","n":null,"prompt":"x"}`, EndpointCompletions, "-", 1, ""},
		{"n zero", `{"model":"m","n":0,"prompt":"x"}`, EndpointCompletions, "n", 0, ""},
		{"n too many", `{"model":"m","n":129,"prompt":"x"}`, EndpointCompletions, "n", 0, ""},
		{"best_of negative", `{"model":"m","best_of":-1,"prompt":"x"}`, EndpointCompletions, "best_of", 0, ""},
		{"n not a number", `{"model":"m","n":"2","prompt":"x"}`, EndpointCompletions, "n", 0, ""},
		{"embeddings ignore n", `{"model":"m","n":0,"input":"x"}`, EndpointEmbeddings, "-", 1, ""},
		{"user not a string", `{"model":"m","user":5,"prompt":"x"}`, EndpointCompletions, "user", 0, ""},
		{"user too long", `{"model":"m","user":"` + long + `","prompt":"x"}`, EndpointCompletions, "user", 0, ""},
		{"user at the bound", `{"model":"m","user":"` + long[1:] + `","prompt":"x"}`, EndpointCompletions, "-", 1, long[1:]},
	}
	for _, c := range cases {
		cr, aerr := decodeRequest(c.ep, []byte(c.body))
		if c.param != "-" {
			if aerr == nil || aerr.Param != c.param {
				t.Errorf("%s: got %+v, want a 400 on %q", c.name, aerr, c.param)
			}
			continue
		}
		if aerr != nil || cr.choices != c.choices || cr.endUser != c.user {
			t.Errorf("%s: %+v, choices %d user %q", c.name, aerr, cr.choices, cr.endUser)
		}
	}
}

func TestEstimatePromptImages(t *testing.T) {
	img := `{"type":"image_url","image_url":{"url":"data:image/png;base64,` + strings.Repeat("A", 4000) + `"}}`
	text := `[{"role":"user","content":[{"type":"text","text":"abcd"},` + img + `,` + img + `]}]`
	got := estimatePrompt(EndpointChat, []byte(text))
	want := int64(len(text)-2*len(img))/4 + 1 + 2*ImageTokens
	if got != want {
		t.Fatalf("estimate %d, want %d", got, want)
	}
	// Plain text keeps its old estimate; a completion prompt mentioning
	// "image_url" is text.
	for _, s := range []string{`[{"role":"user","content":"image_url"}]`, `"image_url"`} {
		if got := estimatePrompt(EndpointChat, []byte(s)); got != int64(len(s))/4+1 {
			t.Errorf("%s: %d", s, got)
		}
	}
}
