package anthropic

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return append(out.Bytes(), '\n')
}

// Each requests/<name>.in.json is a Messages body; <name>.out.json the chat
// body it becomes.
func TestGoldenRequests(t *testing.T) {
	ins, _ := filepath.Glob("testdata/requests/*.in.json")
	if len(ins) == 0 {
		t.Fatal("no golden requests")
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			decode := DecodeMessages
			if strings.HasPrefix(name, "count_") {
				decode = DecodeCountTokens
			}
			req, rerr := decode(body)
			if rerr != nil {
				t.Fatalf("refused: %s (param %s)", rerr.Message, rerr.Param)
			}
			golden(t, "requests/"+name+".out.json", indent(t, req.Chat))
			if req.InputEstimate < 1 || req.InputEstimate > int64(len(body)) {
				t.Errorf("input estimate %d for a %d-byte body", req.InputEstimate, len(body))
			}
		})
	}
}

// Every refused field is named in the 400.
func TestRefusalsNameTheField(t *testing.T) {
	f, err := os.Open("testdata/requests/refusals.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, _ := strings.Cut(sc.Text(), "\t")
		param, body, _ := strings.Cut(rest, "\t")
		decode := DecodeMessages
		if strings.HasPrefix(name, "count_") {
			decode = DecodeCountTokens
		}
		_, rerr := decode([]byte(body))
		if rerr == nil {
			t.Errorf("%s: accepted, want a 400 naming %s", name, param)
			continue
		}
		if rerr.Param != param || !strings.Contains(rerr.Message, param) {
			t.Errorf("%s: refused with param %q message %q, want it to name %s", name, rerr.Param, rerr.Message, param)
		}
		out.WriteString(name + ": " + string(RequestErrorBody(rerr, "")) + "\n")
	}
	golden(t, "requests/refusals.out.txt", out.Bytes())
}

func goldenRequest() *Request {
	return &Request{Model: "claude-local", MaxTokens: 100, StopSequences: []string{"\n\nHuman:"}}
}

func TestGoldenResponses(t *testing.T) {
	ins, _ := filepath.Glob("testdata/responses/*.in.json")
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := TranslateResponse(body, goldenRequest(), "msg_test")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "responses/"+name+".out.json", indent(t, got))
		})
	}
}

func TestGoldenStreams(t *testing.T) {
	ins, _ := filepath.Glob("testdata/streams/*.in.sse")
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.sse")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var whole bytes.Buffer
			sw := NewStreamWriter(&whole, goldenRequest(), "msg_test", 11)
			if _, err := sw.Write(body); err != nil {
				t.Fatal(err)
			}
			if !sw.Ended() {
				t.Fatal("stream not ended")
			}
			golden(t, "streams/"+name+".out.sse", whole.Bytes())
			// The same bytes split anywhere translate the same.
			for _, step := range []int{1, 7, 64} {
				var split bytes.Buffer
				sw := NewStreamWriter(&split, goldenRequest(), "msg_test", 11)
				for i := 0; i < len(body); i += step {
					if _, err := sw.Write(body[i:min(i+step, len(body))]); err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(split.Bytes(), whole.Bytes()) {
					t.Errorf("written %d bytes at a time, the stream differs:\n%s", step, split.Bytes())
				}
			}
		})
	}
}

func TestGoldenErrors(t *testing.T) {
	b, err := os.ReadFile("testdata/errors/cases.tsv")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		st, body, _ := strings.Cut(line, "\t")
		status, err := strconv.Atoi(st)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString(st + " " + string(TranslateError(status, []byte(body), "req_1")) + "\n")
	}
	golden(t, "errors/cases.out.txt", out.Bytes())
}
