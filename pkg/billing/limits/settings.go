package limits

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llmctl/llmctl/pkg/billing"
)

// Settings is the `limits:` section of the serve config file.
type Settings struct {
	// Redis is a redis:// or rediss:// URL; empty keeps counters in process.
	Redis     string                   `yaml:"redis"`
	FailMode  FailMode                 `yaml:"failMode"`
	Window    time.Duration            `yaml:"window"`
	SlotLease time.Duration            `yaml:"slotLease"`
	Key       LimitSet                 `yaml:"key"`
	Tenant    LimitSet                 `yaml:"tenant"`
	Models    map[string]ModelLimitSet `yaml:"models"`
	// Batch are the batch-only limits of batch lines (Config.Batch).
	Batch ModelLimitSet `yaml:"batch"`
}

// LimitSet is billing.Limits as written in YAML.
type LimitSet struct {
	RPM            int64 `yaml:"rpm"`
	TPM            int64 `yaml:"tpm"`
	MaxConcurrency int64 `yaml:"maxConcurrency"`
}

// ModelLimitSet is ModelLimits as written in YAML.
type ModelLimitSet struct {
	Key    LimitSet `yaml:"key"`
	Tenant LimitSet `yaml:"tenant"`
}

func (l LimitSet) limits() billing.Limits {
	return billing.Limits{RPM: l.RPM, TPM: l.TPM, MaxConcurrency: l.MaxConcurrency}
}

// Config turns the settings into a limiter Config.
func (s Settings) Config(log *slog.Logger, reg prometheus.Registerer) Config {
	c := Config{Key: s.Key.limits(), Tenant: s.Tenant.limits(), Window: s.Window, SlotLease: s.SlotLease,
		FailMode: s.FailMode, Logger: log, Registerer: reg,
		Batch: ModelLimits{Key: s.Batch.Key.limits(), Tenant: s.Batch.Tenant.limits()}}
	if len(s.Models) > 0 {
		c.Models = make(map[string]ModelLimits, len(s.Models))
		for m, ml := range s.Models {
			c.Models[m] = ModelLimits{Key: ml.Key.limits(), Tenant: ml.Tenant.limits()}
		}
	}
	return c
}

// Validate checks the settings without connecting anywhere.
func (s Settings) Validate() error {
	c := s.Config(nil, nil)
	if err := c.defaults(); err != nil {
		return err
	}
	if s.Redis != "" {
		if _, err := redis.ParseURL(s.Redis); err != nil {
			return fmt.Errorf("limits.redis: %w", err)
		}
	}
	return nil
}

// Open builds the limiter the settings describe: on Redis when a URL is
// set, else in process. Close the limiter, then call closeRedis.
func (s Settings) Open(log *slog.Logger, reg prometheus.Registerer) (l *Limiter, closeRedis func() error, err error) {
	cfg := s.Config(log, reg)
	if s.Redis == "" {
		l, err := NewMemory(cfg)
		return l, func() error { return nil }, err
	}
	opt, err := redis.ParseURL(s.Redis)
	if err != nil {
		return nil, nil, fmt.Errorf("limits.redis: %w", err)
	}
	shortTimeouts(opt, s.Redis)
	rdb := redis.NewClient(opt)
	l, err = NewRedis(rdb, cfg)
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return l, rdb.Close, nil
}

// shortTimeouts sets 500ms timeouts and one retry, except where the URL sets
// its own (redis://host/0?read_timeout=2s&max_retries=3): a decision is on
// every request's path, and while Redis is away the limiter must fall back
// quickly rather than queue behind dials, but an operator whose Redis is
// slower than that on purpose (or a loaded test machine) can say so.
func shortTimeouts(opt *redis.Options, rawURL string) {
	q := url.Values{}
	if u, err := url.Parse(rawURL); err == nil {
		q = u.Query()
	}
	set := func(name string, apply func()) {
		if !q.Has(name) {
			apply()
		}
	}
	set("dial_timeout", func() { opt.DialTimeout = 500 * time.Millisecond })
	set("read_timeout", func() { opt.ReadTimeout = 500 * time.Millisecond })
	set("write_timeout", func() { opt.WriteTimeout = 500 * time.Millisecond })
	set("max_retries", func() { opt.MaxRetries = 1 })
}
