// Package metrics scrapes a gateway's Prometheus /metrics endpoint and turns
// two scrapes into what an operator watches: request and token rates, error
// and 429 rates, latency quantiles computed from histogram deltas, backend
// health and the GPU gauges. Parsing is prometheus/common's expfmt; this
// package only does the arithmetic between scrapes.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	neturl "net/url"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape is one parsed /metrics response and the time it was taken.
type Scrape struct {
	At       time.Time
	Families map[string]*dto.MetricFamily
}

// Parse reads the Prometheus text exposition format.
func Parse(r io.Reader, at time.Time) (Scrape, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Scrape{}, fmt.Errorf("parse metrics: %w", err)
	}
	return Scrape{At: at, Families: fams}, nil
}

// DefaultMaxBytes bounds a scrape body: a gateway's metrics are a few KiB; a
// misdirected --target must not make top read a whole file into memory.
const DefaultMaxBytes = 8 << 20

// Scraper fetches /metrics over HTTP.
type Scraper struct {
	Client   *http.Client
	Now      func() time.Time // the scrape's timestamp; time.Now when nil
	MaxBytes int64            // DefaultMaxBytes when 0
}

// Scrape GETs url and parses it. Errors name the target.
func (s *Scraper) Scrape(ctx context.Context, url string) (Scrape, error) {
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	max := s.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Scrape{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	// Ask for text only: that is the format Parse reads.
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1")
	resp, err := client.Do(req)
	if err != nil {
		// net/http repeats the method and URL; the target is named once here.
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Scrape{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return Scrape{}, fmt.Errorf("scrape %s: HTTP %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil && mt != "text/plain" {
			return Scrape{}, fmt.Errorf("scrape %s: content type %q is not the Prometheus text format", url, mt)
		}
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	at := now()
	lr := &io.LimitedReader{R: resp.Body, N: max + 1}
	sc, err := Parse(lr, at)
	if lr.N <= 0 {
		return Scrape{}, fmt.Errorf("scrape %s: body larger than %d bytes", url, max)
	}
	if err != nil {
		return Scrape{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	return sc, nil
}
