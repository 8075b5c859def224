package top

import (
	"fmt"
	"io"
	"strings"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/top/metrics"
)

// WriteTable prints a snapshot as plain tables for `top --once -o table`.
func WriteTable(w io.Writer, s Snapshot) error {
	section := func(title string) { fmt.Fprintf(w, "\n%s\n", title) }
	fmt.Fprintf(w, "llmctl top at %s\n", s.Time.UTC().Format("2006-01-02T15:04:05Z"))

	section("TARGETS")
	t := printer.TableWriter(w, "url", "state", "error")
	for _, tg := range s.Targets {
		state := "up"
		if !tg.Up {
			state = "down"
		}
		t.Row(tg.URL, state, dash(tg.Error))
	}
	if err := t.Flush(); err != nil {
		return err
	}

	section("TRAFFIC")
	if s.Traffic == nil {
		fmt.Fprintln(w, "no rates: no target answered twice")
	} else {
		t = printer.TableWriter(w, "model", "req/s", "p50", "p99", "ttft p50", "ttft p99", "tok/s in", "tok/s out", "5xx/s", "429/s")
		t.Row(statsCells("all", s.Traffic.Overall)...)
		for _, m := range s.Traffic.Models {
			t.Row(statsCells(m.Model, m.Stats)...)
		}
		if err := t.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "in flight: %g\n", s.Traffic.InFlight)
		if len(s.Traffic.Backends) > 0 {
			section("BACKENDS")
			t = printer.TableWriter(w, "backend", "state", "in-flight", "req/s", "err/s")
			for _, b := range s.Traffic.Backends {
				state := "up"
				switch {
				case !b.Reported:
					state = "unknown"
				case !b.Up:
					state = "down"
				}
				t.Row(b.Name, state, num(b.InFlight), num(b.RPS), num(b.ErrorsPS))
			}
			if err := t.Flush(); err != nil {
				return err
			}
		}
	}

	section("GPUS")
	if len(s.GPUs) == 0 {
		fmt.Fprintln(w, s.GPUNote)
	} else {
		t = printer.TableWriter(w, "gpu", "source", "util", "vram used GiB", "vram total GiB", "temp C", "power W")
		for _, g := range s.GPUs {
			t.Row(g.Name, s.GPUSource, fmt.Sprintf("%.0f%%", g.Utilization*100), fmt.Sprintf("%.1f", g.MemUsed/(1<<30)),
				fmt.Sprintf("%.1f", g.MemTotal/(1<<30)), fmt.Sprintf("%.0f", g.TempC), fmt.Sprintf("%.0f", g.PowerW))
		}
		if err := t.Flush(); err != nil {
			return err
		}
	}

	if s.Tenants != nil || s.LedgerErr != "" {
		section("TENANTS")
		if s.LedgerErr != "" {
			fmt.Fprintln(w, "error:", s.LedgerErr)
		}
		t = printer.TableWriter(w, "tenant", "balance", "spend 1h", "spend 24h", "reqs 1h", "reqs 24h")
		for _, r := range s.Tenants {
			t.Row(r.Name, Money(r.Balance, 6), Money(r.Spend1h, 6), Money(r.Spend24h, 6), fmt.Sprint(r.Requests1h), fmt.Sprint(r.Requests24h))
		}
		if err := t.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func statsCells(name string, s metrics.Stats) []string {
	return []string{name, num(s.RPS), secs(s.P50, s.Samples), secs(s.P99, s.Samples), secs(s.TTFTP50, s.TTFTSamples),
		secs(s.TTFTP99, s.TTFTSamples), num(s.TokensInPS), num(s.TokensOutPS), num(s.ErrorsPS), num(s.LimitedPS)}
}

// secs prints seconds with millisecond precision, "-" without samples.
func secs(v, samples float64) string {
	if samples == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3fs", v)
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func num(v float64) string { return fmt.Sprintf("%.2f", v) }

// Money formats integer micro-units exactly with decimals (0..6)
// fractional digits, truncating toward zero: money is never a float.
func Money(m int64, decimals int) string {
	sign := ""
	u := uint64(m)
	if m < 0 {
		sign = "-"
		u = uint64(-(m + 1)) + 1 // no overflow for math.MinInt64
	}
	decimals = min(max(decimals, 0), 6)
	if decimals == 0 {
		return fmt.Sprintf("%s%d", sign, u/1_000_000)
	}
	div := uint64(1)
	for i := decimals; i < 6; i++ {
		div *= 10
	}
	return fmt.Sprintf("%s%d.%0*d", sign, u/1_000_000, decimals, (u%1_000_000)/div)
}
