// Package reconcile compares the tokens the ledger charged with the tokens
// the backends say they processed, per model and interval: the check that
// the bill agrees with what the GPU actually generated (docs/economics.md).
//
// Backends are read from their Prometheus text endpoints: vLLM
// (vllm:prompt_tokens_total, vllm:generation_tokens_total, label
// model_name), the llama.cpp server (llamacpp:prompt_tokens_total,
// llamacpp:tokens_predicted_total, one model per server, named by the
// target) and llmctl's embedded engine (llmctl_engine_prompt_tokens_total,
// llmctl_engine_generation_tokens_total, label model). Counters are
// cumulative since the backend started, so a window needs a baseline: the
// backend's start (process_start_time_seconds) when it started inside the
// window, else an earlier sample kept in a state file.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Counts are a model's token counters (or their increase over a window).
type Counts struct {
	Prompt    int64 `json:"prompt"`
	Generated int64 `json:"generated"`
}

func (c Counts) add(o Counts) Counts { return Counts{c.Prompt + o.Prompt, c.Generated + o.Generated} }

// Target is one metrics endpoint. Model, when set, names the gateway model
// every token series of the target belongs to: needed for llama.cpp, whose
// metrics carry no model label, and where the gateway's model name differs
// from the backend's.
type Target struct {
	URL   string `json:"url"`
	Model string `json:"model,omitempty"`
}

// ParseTarget reads --target: URL or MODEL=URL. A bare host:port gets
// http:// and a URL without a path gets /metrics.
func ParseTarget(s string) (Target, error) {
	var t Target
	s = strings.TrimSpace(s)
	if m, u, ok := strings.Cut(s, "="); ok && !strings.Contains(m, "/") && !strings.Contains(m, ":") {
		t.Model, s = m, u
	}
	if s == "" {
		return t, errors.New("--target: empty URL (want URL or MODEL=URL)")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	scheme, rest, _ := strings.Cut(s, "://")
	if scheme != "http" && scheme != "https" {
		return t, fmt.Errorf("--target %q: want an http or https URL", s)
	}
	if !strings.Contains(rest, "/") {
		s += "/metrics"
	}
	t.URL = s
	return t, nil
}

// Sample is one read of a target.
type Sample struct {
	Target string    `json:"target"`
	Time   time.Time `json:"time"`
	// Start is when the backend process started (zero: not exported).
	Start  time.Time         `json:"start,omitzero"`
	Models map[string]Counts `json:"models"`
}

// series says which counter a family holds and which label names its model.
type series struct {
	generated  bool
	modelLabel string // "" = the target's model
}

// known are the token counters of the supported backends, by family name
// as the text format's TYPE line gives it (with or without _total: the
// Python client writes either, depending on its version).
var known = map[string]series{
	"vllm:prompt_tokens":              {false, "model_name"},
	"vllm:generation_tokens":          {true, "model_name"},
	"llamacpp:prompt_tokens":          {false, ""},
	"llamacpp:tokens_predicted":       {true, ""},
	"llmctl_engine_prompt_tokens":     {false, "model"},
	"llmctl_engine_generation_tokens": {true, "model"},
}

// Parse reads Prometheus text exposition into per-model counts; series of
// one model (several engines, label sets) are summed. model, when set,
// takes every series regardless of labels.
func Parse(r io.Reader, modelName string) (Sample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Sample{}, fmt.Errorf("reading Prometheus metrics: %w", err)
	}
	s := Sample{Models: map[string]Counts{}}
	if f, ok := fams["process_start_time_seconds"]; ok && len(f.Metric) > 0 {
		if v := value(f.Metric[0]); v > 0 && !math.IsInf(v, 0) && v < 1e12 {
			sec, frac := math.Modf(v)
			s.Start = time.Unix(int64(sec), int64(frac*1e9)).UTC()
		}
	}
	found := false
	for name, f := range fams {
		sr, ok := known[strings.TrimSuffix(name, "_total")]
		if !ok {
			continue
		}
		found = true
		for _, m := range f.Metric {
			v := value(m)
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) || v > 1<<62 {
				return Sample{}, fmt.Errorf("metric %s: %v is not a token count", name, v)
			}
			mn := modelName
			if mn == "" && sr.modelLabel != "" {
				mn = label(m, sr.modelLabel)
			}
			if mn == "" {
				return Sample{}, fmt.Errorf("metric %s names no model: give the target as MODEL=URL", name)
			}
			c := s.Models[mn]
			if sr.generated {
				c.Generated += int64(math.Round(v))
			} else {
				c.Prompt += int64(math.Round(v))
			}
			s.Models[mn] = c
		}
	}
	if !found {
		return Sample{}, errors.New("no token counters of vLLM, llama.cpp (started with --metrics) or the llmctl engine found")
	}
	return s, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Scrape reads one target at now.
func Scrape(ctx context.Context, c *http.Client, t Target, now time.Time) (Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return Sample{}, fmt.Errorf("target %s: %w", t.URL, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := c.Do(req)
	if err != nil {
		return Sample{}, fmt.Errorf("target %s: %w", t.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Sample{}, fmt.Errorf("target %s: HTTP %d", t.URL, resp.StatusCode)
	}
	s, err := Parse(io.LimitReader(resp.Body, 64<<20), t.Model)
	if err != nil {
		return Sample{}, fmt.Errorf("target %s: %w", t.URL, err)
	}
	s.Target, s.Time = t.URL, now
	return s, nil
}
