package responses

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGolden runs each testdata/<case>: request.json → chat.json (the chat
// request it becomes), and the chat answer, upstream.json or upstream.sse,
// → response.json or response.sse (what the client gets). Run with
// -update to rewrite the outputs, then read the diff.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			x := newExchange("test")
			req, err := os.ReadFile(filepath.Join(dir, "request.json"))
			if err != nil {
				t.Fatal(err)
			}
			r, aerr := x.Decode(req)
			if aerr != nil {
				t.Fatalf("decode: %v", aerr)
			}
			golden(t, filepath.Join(dir, "chat.json"), indent(t, r.Chat))
			if up, err := os.ReadFile(filepath.Join(dir, "upstream.json")); err == nil {
				status, ctype, out := x.JSON(http.StatusOK, up)
				if status != http.StatusOK || ctype != "application/json" {
					t.Fatalf("status %d %s: %s", status, ctype, out)
				}
				golden(t, filepath.Join(dir, "response.json"), indent(t, out))
			}
			if up, err := os.ReadFile(filepath.Join(dir, "upstream.sse")); err == nil {
				golden(t, filepath.Join(dir, "response.sse"), replay(x, up))
			}
		})
	}
}

// replay feeds a chat SSE body to x as the gateway's writer would.
func replay(x *exchange, sse []byte) []byte {
	var out []byte
	ended := false
	for _, line := range bytes.Split(sse, []byte("\n")) {
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok || ended {
			continue
		}
		switch {
		case string(data) == "[DONE]":
			out, ended = append(out, x.Done()...), true
		case bytes.HasPrefix(data, []byte(`{"error"`)):
			out, ended = append(out, x.StreamError(data)...), true
		default:
			out = append(out, x.Chunk(data)...)
		}
	}
	if !ended {
		out = append(out, x.StreamError(nil)...)
	}
	return out
}

func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return append(buf.Bytes(), '\n')
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
