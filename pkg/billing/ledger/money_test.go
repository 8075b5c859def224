package ledger

import (
	"errors"
	"math"
	"testing"

	"github.com/llmctl/llmctl/pkg/billing"
)

func TestParseMicros(t *testing.T) {
	for in, want := range map[string]Micros{
		"0": 0, "12": 12_000_000, "-0.25": -250_000, "3.000001": 3_000_001, "+.5": 500_000, " 7.1 ": 7_100_000,
		"9223372036854.775807": math.MaxInt64,
	} {
		got, err := ParseMicros(in)
		if err != nil || got != want {
			t.Errorf("ParseMicros(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-", ".", "1.", "1.0000001", "1e3", "0x10", "1,5", "--1", "9223372036854.775808", "99999999999999999999"} {
		if _, err := ParseMicros(in); !errors.Is(err, ErrAmount) {
			t.Errorf("ParseMicros(%q) accepted", in)
		}
	}
	if s := Micros(-1_500_000).String(); s != "-1.500000" {
		t.Errorf("String = %s", s)
	}
	if s := Micros(math.MinInt64).String(); s != "-9223372036854.775808" {
		t.Errorf("String(min) = %s", s)
	}
}

func FuzzParseMicros(f *testing.F) {
	for _, s := range []string{"0", "1.5", "-0.000001", "9223372036854.775807", "1.", "abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMicros(s)
		if err != nil {
			return
		}
		back, err := ParseMicros(m.String())
		if err != nil || back != m {
			t.Fatalf("%q → %d → %q → %d, %v", s, m, m.String(), back, err)
		}
	})
}

func TestCost(t *testing.T) {
	p := Price{Input: 1_000_000, Output: 3_000_000} // 1 and 3 units per 1M tokens
	for _, c := range []struct {
		p    Price
		u    billing.Usage
		want Micros
	}{
		{p, billing.Usage{}, 0},
		{p, billing.Usage{PromptTokens: 1}, 1},
		{p, billing.Usage{PromptTokens: 1, CompletionTokens: 1}, 4},
		{p, billing.Usage{PromptTokens: 1_000_000}, 1_000_000},
		{p, billing.Usage{CompletionTokens: 333_333}, 999_999},
		{Price{Input: 1}, billing.Usage{PromptTokens: 1}, 1},                    // 1e-6 µ rounds up
		{Price{Input: 1}, billing.Usage{PromptTokens: 1_000_000}, 1},            // exactly 1 µ
		{Price{Input: 1}, billing.Usage{PromptTokens: 1_000_001}, 2},            // a hair over
		{Price{Output: 250_000}, billing.Usage{CompletionTokens: 4_000}, 1_000}, // 4k tokens at 0.25/M
	} {
		got, err := c.p.Cost(c.u)
		if err != nil || got != c.want {
			t.Errorf("%+v.Cost(%+v) = %d, %v; want %d", c.p, c.u, got, err, c.want)
		}
	}
	if _, err := (Price{Input: math.MaxInt64}).Cost(billing.Usage{PromptTokens: math.MaxInt64}); err == nil {
		t.Error("overflowing cost accepted")
	}
	if _, err := p.Cost(billing.Usage{PromptTokens: -1}); err == nil {
		t.Error("negative usage priced")
	}
}

func TestParsePrices(t *testing.T) {
	p, err := ParsePrices([]byte("unknownModel: default\ndefault: {input: 5, output: 7}\nmodels:\n  llama3: {input: 200000, output: 600000}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pr, _ := p.For("llama3"); pr != (Price{Input: 200000, Output: 600000}) {
		t.Fatalf("llama3 price %+v", pr)
	}
	if pr, _ := p.For("other"); pr != (Price{Input: 5, Output: 7}) {
		t.Fatalf("default price %+v", pr)
	}
	if _, err := (Prices{}).For("x"); !errors.Is(err, ErrUnknownModel) {
		t.Fatalf("reject policy: %v", err)
	}
	for _, bad := range []string{"unknownModel: maybe", "models: {a: {input: -1}}", "colour: red", "default: {input: 1.5}"} {
		if _, err := ParsePrices([]byte(bad)); err == nil {
			t.Errorf("ParsePrices(%q) accepted", bad)
		}
	}
}

func FuzzParsePrices(f *testing.F) {
	f.Add([]byte("unknownModel: reject\nmodels:\n  m: {input: 1, output: 2}\n"))
	f.Add([]byte(`{"default":{"input":1,"output":1},"unknownModel":"default"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePrices(data)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParsePrices returned invalid prices: %v", err)
		}
	})
}
