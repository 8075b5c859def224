package top

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/top/metrics"
	"github.com/llmctl/llmctl/pkg/top/toptest"
)

func TestValidateTarget(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:9090":          "http://127.0.0.1:9090/metrics",
		"https://gw.example/":            "https://gw.example/metrics",
		"http://10.0.0.5:9090/x/metrics": "http://10.0.0.5:9090/x/metrics",
	} {
		if got, err := ValidateTarget(in); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:9090", "ftp://x/metrics", "http://", "::"} {
		if _, err := ValidateTarget(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

// gpuDouble stands in for NVML, which cannot exist on this machine.
type gpuDouble struct {
	gpus []metrics.GPU
	err  error
}

func (g *gpuDouble) GPUs(context.Context) ([]metrics.GPU, error) { return g.gpus, g.err }

func TestGPUSourcePreference(t *testing.T) {
	gw := toptest.NewGateway()
	gw.SetGPU("0", 0.5, 1, 2, 50, 100)
	srv := gw.Server()
	defer srv.Close()
	nvml := &gpuDouble{gpus: []metrics.GPU{{Name: "RTX 4090", Utilization: 0.9}}}
	src := &Sources{Targets: []string{srv.URL + "/metrics"}, Scraper: &metrics.Scraper{Client: srv.Client()}, GPU: nvml}
	m := NewMonitor(src.Targets, false)
	ctx := context.Background()

	m.ApplyScrapes(src.ScrapeAll(ctx))
	if m.GPUFrom != "gateway" || len(m.GPUs) != 1 || m.GPUs[0].Name != "0" {
		t.Fatalf("before NVML: %s %+v", m.GPUFrom, m.GPUs)
	}
	m.ApplyGPUs(src.ReadGPUs(ctx))
	m.ApplyScrapes(src.ScrapeAll(ctx))
	if m.GPUFrom != "nvml" || m.GPUs[0].Name != "RTX 4090" {
		t.Fatalf("NVML must win over gauges: %s %+v", m.GPUFrom, m.GPUs)
	}
	nvml.err = errors.New("NVML: driver not loaded")
	m.ApplyGPUs(src.ReadGPUs(ctx))
	m.ApplyScrapes(src.ScrapeAll(ctx))
	if m.GPUFrom != "gateway" {
		t.Fatalf("NVML failing: want the gauges back, got %s", m.GPUFrom)
	}
	srv.Close()
	m.ApplyGPUs(nil, errors.New("none"))
	m.ApplyScrapes(src.ScrapeAll(ctx))
	if len(m.GPUs) != 0 || m.GPUNote() == "" {
		t.Fatalf("neither source: want the note, got %+v", m.GPUs)
	}
}

func TestSeriesBounded(t *testing.T) {
	var s Series
	for i := 0; i < HistoryLen+10; i++ {
		s.Push(float64(i))
	}
	last := s.Last(3)
	if len(s.vals) != HistoryLen || len(last) != 3 || last[2] != float64(HistoryLen+9) || last[0] != float64(HistoryLen+7) {
		t.Fatalf("len %d last %v", len(s.vals), last)
	}
	if got := s.Last(HistoryLen * 2); len(got) != HistoryLen {
		t.Fatalf("Last beyond length: %d", len(got))
	}
}

func TestWriteTable(t *testing.T) {
	m := NewMonitor([]string{"http://a/metrics"}, true)
	m.ApplyScrapes([]ScrapeResult{{URL: "http://a/metrics", Err: errors.New("connection refused")}})
	m.ApplyTenants([]TenantRow{{Name: "acme", Balance: -1_500_000, Spend1h: 1}}, nil)
	var b bytes.Buffer
	if err := WriteTable(&b, m.Snapshot(time.Unix(0, 0))); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"http://a/metrics  down   connection refused", "no rates", "no GPU data", "acme    -1.500000  0.000001"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestMoney(t *testing.T) {
	for _, c := range []struct {
		m    int64
		d    int
		want string
	}{
		{18_625_000, 4, "18.6250"}, {-1_500_000, 6, "-1.500000"}, {1, 6, "0.000001"}, {1, 4, "0.0000"},
		{-123_456_789, 2, "-123.45"}, {7_000_000, 0, "7"}, {-9223372036854775808, 6, "-9223372036854.775808"},
	} {
		if got := Money(c.m, c.d); got != c.want {
			t.Errorf("Money(%d, %d) = %q, want %q", c.m, c.d, got, c.want)
		}
	}
}
