package upstreamdouble

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, ctx context.Context, d *Double, id, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.URL()+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("X-Request-Id", id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func chat(stream bool, prompt string) string {
	b, _ := json.Marshal(map[string]any{"model": "double-model", "stream": stream,
		"stream_options": map[string]bool{"include_usage": true},
		"messages":       []any{map[string]string{"role": "user", "content": prompt}}})
	return string(b)
}

func wait(t *testing.T, d *Double, id string, cond func(Record) bool) Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := d.Wait(ctx, id, cond)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDeliveredCountsAreExact: what the client read is what the double counts.
func TestDeliveredCountsAreExact(t *testing.T) {
	d := Start(t, Options{})
	ctx := context.Background()

	resp := post(t, ctx, d, "full", chat(true, "a b c tokens=4"))
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, v)
		}
	}
	resp.Body.Close()
	// 4 tokens, the finish chunk, the usage chunk, [DONE]
	if len(events) != 7 || events[6] != "[DONE]" || !strings.Contains(events[5], `"completion_tokens":4`) {
		t.Fatalf("events %v", events)
	}
	if r := wait(t, d, "full", func(r Record) bool { return r.Completed }); r.CompletionTokens != 4 || r.PromptTokens != 4 || r.Canceled {
		t.Fatalf("record %+v", r)
	}

	cctx, cancel := context.WithCancel(ctx)
	resp = post(t, cctx, d, "stall", chat(true, "x tokens=9 stall-after=3"))
	br := bufio.NewReader(resp.Body)
	for n := 0; n < 3; {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			n++
		}
	}
	cancel()
	resp.Body.Close()
	if r := wait(t, d, "stall", func(r Record) bool { return r.Canceled }); r.CompletionTokens != 3 || r.Completed {
		t.Fatalf("stalled record %+v", r)
	}

	resp = post(t, ctx, d, "cut", chat(true, "x tokens=9 fail-after=2"))
	sc = bufio.NewScanner(resp.Body)
	got := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			got++
		}
	}
	resp.Body.Close()
	if r, _ := d.Record("cut"); got != 2 || r.CompletionTokens != 2 || r.Completed {
		t.Fatalf("read %d events, record %+v", got, r)
	}
}

func TestStatusFaultsAndDown(t *testing.T) {
	d := Start(t, Options{Models: []string{"m1", "m2"}})
	resp := post(t, context.Background(), d, "s", chat(false, "status=503"))
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("status directive: %d", resp.StatusCode)
	}
	d.SetFault(Fault{Status: 429, RetryAfter: "2"})
	resp = post(t, context.Background(), d, "f", chat(false, "hi"))
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("fault: %d %v", resp.StatusCode, resp.Header)
	}
	d.SetFault(Fault{})
	mresp, err := http.Get(d.URL() + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Data []struct{ ID string } }
	_ = json.NewDecoder(mresp.Body).Decode(&list)
	mresp.Body.Close()
	if len(list.Data) != 2 || list.Data[1].ID != "m2" {
		t.Fatalf("models %+v", list)
	}
	d.Down()
	if _, err := http.Get(d.URL() + "/v1/models"); err == nil {
		t.Fatal("a down double still answers")
	}
	if err := d.Up(); err != nil {
		t.Fatal(err)
	}
	resp = post(t, context.Background(), d, "up", chat(false, "hi tokens=1"))
	resp.Body.Close()
	if resp.StatusCode != 200 || d.Requests() != 3 {
		t.Fatalf("after Up: %d, %d requests", resp.StatusCode, d.Requests())
	}
}
