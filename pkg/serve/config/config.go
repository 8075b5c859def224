// Package config loads `llmctl serve` settings from three layers with the
// precedence flag > environment (LLMCTL_…) > YAML file > embedded defaults.
// The YAML decoder is strict: an unknown key is an error that names it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/llmctl/llmctl/internal/decodeerr"
	"github.com/llmctl/llmctl/pkg/billing/alerts"
	"github.com/llmctl/llmctl/pkg/billing/limits"
	"github.com/llmctl/llmctl/pkg/billing/margin"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// Config is the whole serve configuration, as written in the YAML file.
type Config struct {
	Listen      string `yaml:"listen"`      // public API address
	AdminListen string `yaml:"adminListen"` // /metrics; "off" disables it
	DB          string `yaml:"db"`          // postgres://… or sqlite:PATH
	// DBPool sizes and ages the database connections (0: driver defaults).
	DBPool store.Pool `yaml:"dbPool"`
	// AdminAPI is where /admin/v1/ is served: "api" (the public listener),
	// "admin" (the admin listener) or "off".
	AdminAPI string `yaml:"adminAPI"`

	MaxBodyBytes     int64         `yaml:"maxBodyBytes"`
	BodyBudgetBytes  int64         `yaml:"bodyBudgetBytes"` // all bodies in flight together
	BodyReadTimeout  time.Duration `yaml:"bodyReadTimeout"` // one body, once its headers are in
	DefaultMaxTokens int64         `yaml:"defaultMaxTokens"`
	KeyCacheTTL      time.Duration `yaml:"keyCacheTTL"`
	ShutdownGrace    time.Duration `yaml:"shutdownGrace"`
	HealthInterval   time.Duration `yaml:"healthInterval"`
	Timeouts         Timeouts      `yaml:"timeouts"`

	Backends []Backend         `yaml:"backends"`
	Aliases  map[string]string `yaml:"aliases"` // client model name → backend model name

	// Models are GGUF files served by the embedded CPU engine, beside the
	// remote backends and through the same keys, limits and billing.
	Models []Model `yaml:"models"`
	// EngineThreads is the engine's default threads per model (0 = all CPUs).
	EngineThreads int `yaml:"engineThreads"`
	// Demo serves the bundled demo model (trained on the KJV Bible) when neither a
	// backend nor a model is configured, so a bare `llmctl serve` answers.
	Demo bool `yaml:"demo"`

	// AdminKey, from LLMCTL_ADMIN_KEY only (a secret stays out of files), is
	// imported as the admin tenant's key instead of generating and printing one.
	AdminKey string `yaml:"-"`

	// Limits are the rate limits (docs/limits.md); Redis empty = in process.
	Limits limits.Settings `yaml:"limits"`

	// Alerts are the outbound signed webhooks (docs/billing.md#alerts).
	Alerts alerts.Config `yaml:"alerts"`

	// Billing is the ledger and payment webhooks (docs/billing.md).
	Billing Billing `yaml:"billing"`

	// Costs price the box for `llmctl ledger margin` (docs/economics.md).
	Costs margin.Costs `yaml:"costs"`

	// Queue is the admission queue for backends at maxConcurrency (queue.go).
	Queue Queue `yaml:"queue"`
	// Fallbacks list, per model, the models that answer when none of its
	// backends can (docs/routing.md).
	Fallbacks map[string][]string `yaml:"fallbacks"`
	// Batch tunes the Batches API's worker (batch.go).
	Batch Batch `yaml:"batch"`
	// ContextFallbacks list, per model, the longer-context models that
	// answer a prompt too long for its context (docs/routing.md).
	ContextFallbacks map[string][]string `yaml:"contextFallbacks"`
}

// Model is one GGUF file for the embedded engine.
type Model struct {
	Path    string `yaml:"path"`
	Name    string `yaml:"name"`    // default: the file name without .gguf
	Threads int    `yaml:"threads"` // default: engineThreads
	Context int    `yaml:"context"` // tokens per request; default: the model's, at most 4096
}

// ParseModels turns --model / LLMCTL_MODELS paths into models, skipping empty ones.
func ParseModels(paths []string) []Model {
	var out []Model
	for _, p := range paths {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, Model{Path: p})
		}
	}
	return out
}

// Timeouts apply to every remote backend.
type Timeouts struct {
	Connect   time.Duration `yaml:"connect"`
	FirstByte time.Duration `yaml:"firstByte"`
	Total     time.Duration `yaml:"total"`
}

// Backend is one OpenAI-compatible upstream.
type Backend struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// APIKey is sent upstream as a bearer token; APIKeyEnv names an
	// environment variable holding it instead (keeps secrets out of files).
	APIKey         string   `yaml:"apiKey"`
	APIKeyEnv      string   `yaml:"apiKeyEnv"`
	Models         []string `yaml:"models"` // empty: discovered from URL/v1/models
	Weight         int      `yaml:"weight"`
	MaxConcurrency int      `yaml:"maxConcurrency"`
	// Protocols are the APIs the backend serves itself (Protocols lists
	// them); empty means chat only. A request in another client protocol
	// is translated to chat for it (docs/protocols.md).
	Protocols []string `yaml:"protocols"`
}

// Protocols are the names a backend's protocols list may hold: chat
// (chat/completions, completions, embeddings), responses (/v1/responses),
// messages (/v1/messages) and rerank (/v1/rerank, /v1/score).
func Protocols() []string { return []string{"chat", "responses", "messages", "rerank"} }

// MaxKeyCacheTTL bounds KeyCacheTTL so a revoke reaches every replica
// sharing the store within one second.
const MaxKeyCacheTTL = time.Second

// Defaults are the embedded defaults; db is the default store DSN (SQLite
// in the XDG data dir, store.DefaultDSN).
func Defaults(db string) Config {
	return Config{
		Listen:           "127.0.0.1:8080",
		AdminListen:      "127.0.0.1:9090",
		AdminAPI:         "api",
		DB:               db,
		MaxBodyBytes:     8 << 20,
		BodyBudgetBytes:  64 << 20,
		BodyReadTimeout:  30 * time.Second,
		DefaultMaxTokens: 4096,
		KeyCacheTTL:      500 * time.Millisecond,
		ShutdownGrace:    30 * time.Second,
		HealthInterval:   5 * time.Second,
		Timeouts:         Timeouts{Connect: 2 * time.Second, FirstByte: 60 * time.Second, Total: 10 * time.Minute},
		Demo:             true,
		Billing:          defaultBilling(),
	}
}

// MergeFile overlays the YAML document r onto c. Keys present in the file
// replace defaults; an unknown key is an error naming it.
func (c *Config) MergeFile(name string, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("config %s: %w", name, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config %s: %w", name, decodeerr.WrapYAML(err))
	}
	return nil
}

// ParseBackend parses NAME=URL (the --backend flag and LLMCTL_BACKENDS).
func ParseBackend(s string) (Backend, error) {
	name, url, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok || name == "" || url == "" {
		return Backend{}, fmt.Errorf("backend %q: want NAME=URL, e.g. vllm=http://127.0.0.1:8000", s)
	}
	return Backend{Name: name, URL: url}, nil
}

// Env names the environment variables MergeEnv reads.
var Env = []string{"LLMCTL_LISTEN", "LLMCTL_ADMIN_LISTEN", "LLMCTL_DB", "LLMCTL_BACKENDS",
	"LLMCTL_MAX_BODY_BYTES", "LLMCTL_KEY_CACHE_TTL", "LLMCTL_SHUTDOWN_GRACE",
	"LLMCTL_REDIS", "LLMCTL_RATE_LIMIT_FAIL_MODE", "LLMCTL_MODELS", "LLMCTL_ENGINE_THREADS", "LLMCTL_DEMO", "LLMCTL_ADMIN_KEY", "LLMCTL_ADMIN_API",
	"LLMCTL_PRICES", "LLMCTL_OVERDRAFT", "LLMCTL_SPOOL_DIR", "LLMCTL_STRIPE_WEBHOOK_SECRETS", "LLMCTL_STANDARD_WEBHOOK_SECRETS", "LLMCTL_LEMONSQUEEZY_WEBHOOK_SECRETS"}

// MergeEnv overlays LLMCTL_… variables. LLMCTL_BACKENDS is a comma-separated
// NAME=URL list that replaces the file's backends.
func (c *Config) MergeEnv(lookup func(string) (string, bool)) error {
	get := func(k string) (string, bool) {
		v, ok := lookup(k)
		v = strings.TrimSpace(v)
		return v, ok && v != ""
	}
	if v, ok := get("LLMCTL_LISTEN"); ok {
		c.Listen = v
	}
	if v, ok := get("LLMCTL_ADMIN_LISTEN"); ok {
		c.AdminListen = v
	}
	if v, ok := get("LLMCTL_ADMIN_API"); ok {
		c.AdminAPI = v
	}
	if v, ok := get("LLMCTL_DB"); ok {
		c.DB = v
	}
	if v, ok := get("LLMCTL_REDIS"); ok {
		c.Limits.Redis = v
	}
	if v, ok := get("LLMCTL_RATE_LIMIT_FAIL_MODE"); ok {
		c.Limits.FailMode = limits.FailMode(v)
	}
	if v, ok := get("LLMCTL_BACKENDS"); ok {
		bs, err := ParseBackends(strings.Split(v, ","))
		if err != nil {
			return fmt.Errorf("LLMCTL_BACKENDS: %w", err)
		}
		c.Backends = bs
	}
	if v, ok := get("LLMCTL_ADMIN_KEY"); ok {
		c.AdminKey = v
	}
	if v, ok := get("LLMCTL_MODELS"); ok {
		c.Models = ParseModels(strings.Split(v, ","))
	}
	if v, ok := get("LLMCTL_ENGINE_THREADS"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("LLMCTL_ENGINE_THREADS: %w", err)
		}
		c.EngineThreads = n
	}
	if v, ok := get("LLMCTL_DEMO"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("LLMCTL_DEMO: %w", err)
		}
		c.Demo = b
	}
	c.mergeAlertsEnv(get, lookup)
	c.mergeBillingEnv(get)
	for k, dst := range map[string]*int64{"LLMCTL_MAX_BODY_BYTES": &c.MaxBodyBytes, "LLMCTL_BODY_BUDGET_BYTES": &c.BodyBudgetBytes} {
		if v, ok := get(k); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %q is not a whole number of bytes", k, v)
			}
			*dst = n
		}
	}
	for k, dst := range map[string]*time.Duration{"LLMCTL_KEY_CACHE_TTL": &c.KeyCacheTTL, "LLMCTL_SHUTDOWN_GRACE": &c.ShutdownGrace,
		"LLMCTL_BODY_READ_TIMEOUT": &c.BodyReadTimeout} {
		if v, ok := get(k); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			*dst = d
		}
	}
	return nil
}

// ParseBackends parses several NAME=URL entries, skipping empty ones.
func ParseBackends(specs []string) ([]Backend, error) {
	var out []Backend
	for _, s := range specs {
		if strings.TrimSpace(s) == "" {
			continue
		}
		b, err := ParseBackend(s)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("listen: must not be empty"))
	}
	if c.DB == "" {
		errs = append(errs, errors.New("db: must not be empty"))
	} else if !strings.HasPrefix(c.DB, "sqlite:") && !strings.HasPrefix(c.DB, "postgres://") && !strings.HasPrefix(c.DB, "postgresql://") {
		errs = append(errs, fmt.Errorf("db: %q must be postgres://… or sqlite:PATH", c.DB))
	}
	switch c.AdminAPI {
	case "api", "admin", "off":
		if c.AdminAPI == "admin" && c.AdminListen == "off" {
			errs = append(errs, errors.New(`adminAPI: "admin" needs the admin listener, but adminListen is "off"`))
		}
	default:
		errs = append(errs, fmt.Errorf(`adminAPI: %q must be "api", "admin" or "off"`, c.AdminAPI))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, errors.New("maxBodyBytes: must be positive"))
	}
	if c.BodyBudgetBytes < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("bodyBudgetBytes: %d must be at least maxBodyBytes (%d)", c.BodyBudgetBytes, c.MaxBodyBytes))
	}
	if c.BodyReadTimeout <= 0 {
		errs = append(errs, errors.New("bodyReadTimeout: must be positive"))
	}
	if c.KeyCacheTTL < 0 || c.KeyCacheTTL > MaxKeyCacheTTL {
		errs = append(errs, fmt.Errorf("keyCacheTTL: %s must be between 0 and %s so revokes apply within a second", c.KeyCacheTTL, MaxKeyCacheTTL))
	}
	seen := map[string]bool{}
	for i, b := range c.Backends {
		switch {
		case b.Name == "":
			errs = append(errs, fmt.Errorf("backends[%d].name: must not be empty", i))
		case seen[b.Name]:
			errs = append(errs, fmt.Errorf("backends[%d].name: %q used twice", i, b.Name))
		}
		seen[b.Name] = true
		if !strings.HasPrefix(b.URL, "http://") && !strings.HasPrefix(b.URL, "https://") {
			errs = append(errs, fmt.Errorf("backends[%d].url: %q must start with http:// or https://", i, b.URL))
		}
		if b.Weight < 0 || b.MaxConcurrency < 0 {
			errs = append(errs, fmt.Errorf("backends[%d]: weight and maxConcurrency must not be negative", i))
		}
		named, known := map[string]bool{}, Protocols()
		for j, p := range b.Protocols {
			switch {
			case !slices.Contains(known, p):
				errs = append(errs, fmt.Errorf("backends[%d].protocols[%d]: unknown protocol %q (want one of %s)", i, j, p, strings.Join(known, ", ")))
			case named[p]:
				errs = append(errs, fmt.Errorf("backends[%d].protocols[%d]: %q listed twice", i, j, p))
			}
			named[p] = true
		}
	}
	if c.AdminKey != "" {
		if _, _, err := store.ParseKey(c.AdminKey); err != nil {
			// Never echo the value: it is a secret.
			errs = append(errs, fmt.Errorf("LLMCTL_ADMIN_KEY: %w (want sk-llm-<12 chars>_<secret>, lower-case letters and 2-7)", err))
		}
	}
	if c.EngineThreads < 0 {
		errs = append(errs, errors.New("engineThreads: must not be negative"))
	}
	for i, m := range c.Models {
		if strings.TrimSpace(m.Path) == "" {
			errs = append(errs, fmt.Errorf("models[%d].path: must not be empty", i))
		}
		if m.Threads < 0 || m.Context < 0 {
			errs = append(errs, fmt.Errorf("models[%d]: threads and context must not be negative", i))
		}
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Alerts.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.DBPool.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Billing.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Costs.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Queue.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := ValidateFallbacks(c.Fallbacks); err != nil {
		errs = append(errs, err)
	}
	if err := c.Batch.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := ValidateContextFallbacks(c.ContextFallbacks); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
