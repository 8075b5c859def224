package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fakeBackend is a Backend whose health the test controls.
type fakeBackend struct {
	name   string
	models []string
	err    error
}

func (f *fakeBackend) Name() string                             { return f.name }
func (f *fakeBackend) Models(context.Context) ([]string, error) { return f.models, f.err }
func (f *fakeBackend) Do(context.Context, *Request) (*Response, error) {
	return nil, errors.New("not used")
}

func testRouter(members ...*member) *router {
	return newRouter(slog.New(slog.DiscardHandler), members, map[string]string{"alias": "m"}, 100*time.Millisecond, 400*time.Millisecond)
}

func mem(name string, weight, maxConc int64) *member {
	return &member{b: &fakeBackend{name: name, models: []string{"m"}}, weight: weight, maxConcurrency: maxConc, staticModels: []string{"m"}}
}

func TestRouterLeastOutstandingWeighted(t *testing.T) {
	a, b := mem("a", 1, 0), mem("b", 3, 0)
	r := testRouter(a, b)
	counts := map[string]int{}
	var held []*member
	for range 8 {
		m := r.pick("m", nil)
		counts[m.name()]++
		held = append(held, m)
	}
	// With everything held, b (weight 3) carries three times a's load.
	if counts["a"] != 2 || counts["b"] != 6 {
		t.Fatalf("picks %v, want a=2 b=6", counts)
	}
	for _, m := range held {
		r.release(m)
	}
	if a.outstanding.Load() != 0 || b.outstanding.Load() != 0 {
		t.Fatal("release did not return outstanding to zero")
	}
}

func TestRouterMaxConcurrencyAndTried(t *testing.T) {
	a := mem("a", 1, 1)
	r := testRouter(a)
	m := r.pick("m", nil)
	if m != a || r.pick("m", nil) != nil {
		t.Fatal("a capped at 1 must refuse a second request")
	}
	r.release(m)
	if r.pick("m", map[*member]bool{a: true}) != nil {
		t.Fatal("an already tried backend was picked again")
	}
	if r.pick("other", nil) != nil {
		t.Fatal("picked a backend for a model it does not serve")
	}
}

func TestRouterEjectionBackoffAndPanicMode(t *testing.T) {
	a, b := mem("a", 1, 0), mem("b", 1, 0)
	r := testRouter(a, b)
	r.failed(a)
	for range 4 {
		m := r.pick("m", nil)
		if m != b {
			t.Fatalf("ejected a was picked")
		}
		r.release(m)
	}
	first := a.ejectedUntil
	r.failed(a)
	if !a.ejectedUntil.After(first) {
		t.Fatal("a second failure must eject for longer")
	}
	r.failed(a)
	r.failed(a) // capped at ejectMax
	if d := time.Until(a.ejectedUntil); d > 400*time.Millisecond {
		t.Fatalf("ejection %s over the cap", d)
	}
	// Every candidate ejected: better a possibly-bad backend than a certain 503.
	r.failed(b)
	if m := r.pick("m", nil); m == nil {
		t.Fatal("panic mode must still pick an ejected backend")
	} else {
		r.release(m)
	}
	r.succeeded(a)
	if !a.up(time.Now()) {
		t.Fatal("success must end the ejection")
	}
}

func TestRouterActiveChecksDiscoverAndMarkDown(t *testing.T) {
	fb := &fakeBackend{name: "d", models: []string{"x", "y"}}
	d := &member{b: fb, weight: 1} // no static models: discovered
	r := testRouter(d)
	if _, ok := r.resolve("x"); ok {
		t.Fatal("model known before discovery")
	}
	r.check(context.Background(), time.Second)
	if _, ok := r.resolve("y"); !ok || r.healthyCount() != 1 {
		t.Fatal("discovery did not register the models")
	}
	fb.err = io.ErrUnexpectedEOF
	r.check(context.Background(), time.Second)
	if r.healthyCount() != 0 || r.pick("x", nil) != nil {
		t.Fatal("a failing check must take the backend out")
	}
	fb.err = nil
	r.check(context.Background(), time.Second)
	if r.healthyCount() != 1 {
		t.Fatal("a passing check must bring it back")
	}
	if got, ok := r.resolve("alias"); got != "m" || ok {
		t.Fatalf("alias to an unserved model: %q %v", got, ok)
	}
	if ms := r.models(); len(ms) != 2 || strings.Join(ms["x"], ",") != "d" {
		t.Fatalf("models %v", ms)
	}
}

// TestRouterAnnouncesNewModels: the models served at start are announced
// once, and a later discovery announces only what it adds.
func TestRouterAnnouncesNewModels(t *testing.T) {
	fb := &fakeBackend{name: "d", models: []string{"b", "a"}}
	r := testRouter(mem("s", 1, 0), &member{b: fb, weight: 1})
	var got [][]string
	r.announce(func(ms []string) { got = append(got, ms) })
	r.check(context.Background(), time.Second)
	fb.models = []string{"a", "b", "c"}
	r.check(context.Background(), time.Second)
	r.check(context.Background(), time.Second)
	want := [][]string{{"m"}, {"a", "b"}, {"c"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("announced %v, want %v", got, want)
	}
}
