package ui

import (
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/muesli/termenv"
)

// The traffic pane shows each model's queued requests (all priorities) and,
// only when the queue did something in the interval, a line with its wait,
// refusals and fallbacks.
func TestTrafficQueue(t *testing.T) {
	f := newFixture(t, nil, termenv.Ascii)
	f.m.Update(tea.WindowSizeMsg{Width: 160, Height: 30})
	f.traffic()
	v := f.view()
	if !strings.Contains(v, "QUEUED") {
		t.Fatalf("no QUEUED column:\n%s", v)
	}
	// MODEL REQ/S P50 P99 TTFT50 TTFT99 TOK/S-IN TOK/S-OUT 5XX 429 QUEUED.
	if ll := line(t, v, "llama"); ll[10] != "0" {
		t.Errorf("llama queued = %v, want 0 (nothing queued)", ll)
	}
	if strings.Contains(v, "refused/s") {
		t.Errorf("queue line shown for a quiet queue:\n%s", v)
	}

	f.gw.Queue.WithLabelValues("llama", "high").Set(1)
	f.gw.Queue.WithLabelValues("llama", "normal").Set(5)
	f.gw.Queue.WithLabelValues("qwen", "low").Set(2)
	f.gw.QueueWait.WithLabelValues("llama", "normal").Observe(0.3)
	f.gw.QueueRefused.WithLabelValues("qwen", "full").Add(4)
	f.gw.Fallbacks.WithLabelValues("llama", "llama-cpu").Add(2)
	f.scrape()
	v = f.view()
	if ll := line(t, v, "llama"); ll[10] != "6" {
		t.Errorf("llama queued = %v, want 6 (1 high + 5 normal)", ll)
	}
	if qw := line(t, v, "qwen"); qw[10] != "2" {
		t.Errorf("qwen queued = %v, want 2", qw)
	}
	if all := line(t, v, "all"); all[10] != "8" {
		t.Errorf("overall queued = %v, want 8", all)
	}
	q := strings.Join(line(t, v, "queue"), " ")
	// The fixture's window is 1 s (its clock steps a second per scrape);
	// the one wait sits in (0.25,0.5]: p99 = 0.25+0.25*0.99 = 497.5ms.
	for _, want := range []string{"wait p99 498ms", "refused/s 4.00", "llama→llama-cpu 2.00"} {
		if !strings.Contains(q, want) {
			t.Errorf("queue line %q lacks %q", q, want)
		}
	}
}
