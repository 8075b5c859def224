// Package alerts delivers the ledger's outbox events (balance.low,
// payment.credited, key.expiring, spool.backlog, budget.threshold) to the
// configured endpoints as Standard Webhooks: signed, retried with
// exponential backoff and jitter for up to 24 hours, leased so that
// replicas sharing PostgreSQL never send one delivery at the same time.
// The events themselves are written by the ledger in the transaction of the
// change that causes them (ledger.Outbox), so none is lost to a crash.
package alerts

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// Config is the `alerts:` section of the serve configuration.
type Config struct {
	// LowBalance is the default balance.low threshold in currency units
	// ("1.00"); tenants may have their own. Empty or "0": only tenants
	// with their own threshold get balance.low.
	LowBalance string     `yaml:"lowBalance"`
	Endpoints  []Endpoint `yaml:"endpoints"`
}

// Endpoint is one receiver.
type Endpoint struct {
	URL string `yaml:"url"`
	// Secret is the Standard Webhooks signing secret (whsec_ + base64);
	// SecretEnv names an environment variable holding it instead, which
	// keeps the secret out of the file.
	Secret    string   `yaml:"secret"`
	SecretEnv string   `yaml:"secretEnv"`
	Events    []string `yaml:"events"` // empty: every event
}

// Enabled reports whether anything is to be sent.
func (c Config) Enabled() bool { return len(c.Endpoints) > 0 }

// Resolve fills secrets from secretEnv via lookup.
func (c *Config) Resolve(lookup func(string) (string, bool)) {
	for i, e := range c.Endpoints {
		if e.Secret == "" && e.SecretEnv != "" {
			if v, ok := lookup(e.SecretEnv); ok {
				c.Endpoints[i].Secret = strings.TrimSpace(v)
			}
		}
	}
}

// LowBalanceMicros is the parsed default threshold (0 when unset).
func (c Config) LowBalanceMicros() (ledger.Micros, error) {
	if strings.TrimSpace(c.LowBalance) == "" {
		return 0, nil
	}
	m, err := ledger.ParseMicros(c.LowBalance)
	if err != nil {
		return 0, fmt.Errorf("alerts.lowBalance: %w", err)
	}
	if m < 0 {
		return 0, fmt.Errorf("alerts.lowBalance: %s must not be negative", c.LowBalance)
	}
	return m, nil
}

// Validate reports every problem at once, never echoing a secret.
func (c Config) Validate() error {
	var errs []error
	if _, err := c.LowBalanceMicros(); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for i, e := range c.Endpoints {
		name := fmt.Sprintf("alerts.endpoints[%d]", i)
		u, err := url.Parse(e.URL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			errs = append(errs, fmt.Errorf("%s.url: %q must be an http:// or https:// URL", name, redact(e.URL)))
		case u.User != nil:
			errs = append(errs, fmt.Errorf("%s.url: %q must not carry credentials; the signature authenticates", name, redact(e.URL)))
		case seen[e.URL]:
			errs = append(errs, fmt.Errorf("%s.url: %q is listed twice", name, e.URL))
		}
		seen[e.URL] = true
		switch {
		case e.Secret == "" && e.SecretEnv != "":
			errs = append(errs, fmt.Errorf("%s.secretEnv: %s is not set", name, e.SecretEnv))
		case e.Secret == "":
			errs = append(errs, fmt.Errorf("%s.secret: required, a Standard Webhooks secret such as whsec_<base64>", name))
		default:
			if err := checkSecret(e.Secret); err != nil {
				errs = append(errs, fmt.Errorf("%s.secret: %w", name, err))
			}
		}
		for _, ev := range e.Events {
			if !slices.Contains(ledger.EventTypes(), ev) {
				errs = append(errs, fmt.Errorf("%s.events: unknown event %q (known: %s)", name, ev, strings.Join(ledger.EventTypes(), ", ")))
			}
		}
	}
	return errors.Join(errs...)
}

// checkSecret accepts what the Standard Webhooks library can sign with:
// "whsec_" and the base64 of at least 24 random bytes.
func checkSecret(s string) error {
	const bad = "not a Standard Webhooks secret: want whsec_ followed by base64 of 24 to 64 bytes (the value is not shown)"
	if !strings.HasPrefix(s, "whsec_") {
		return errors.New(bad)
	}
	if _, err := standardwebhooks.NewWebhook(s); err != nil {
		return errors.New(bad)
	}
	// The library takes any key length; the specification asks for 24-64
	// random bytes, and a short one is a configuration mistake.
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
	if err != nil || len(raw) < 24 || len(raw) > 64 {
		return errors.New(bad)
	}
	return nil
}

// routes are the ledger's view of the endpoints.
func (c Config) routes() []ledger.Route {
	out := make([]ledger.Route, 0, len(c.Endpoints))
	for _, e := range c.Endpoints {
		out = append(out, ledger.Route{Endpoint: e.URL, Types: e.Events})
	}
	return out
}

// redact drops credentials from a URL for messages and logs.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
