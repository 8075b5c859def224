package main

import (
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/limits"
)

// completeLimits completes serve options from a config file, env and the
// two limiter flags (set when present in flags).
func completeLimits(t *testing.T, configFile string, env, flags map[string]string) (*serveOptions, error) {
	t.Helper()
	g := &globals{streams: defaultStreams(), ConfigFile: configFile, LogLevel: "info"}
	o := &serveOptions{g: g, redis: flags["redis"], failMode: flags["rate-limit-fail-mode"]}
	o.changed = func(name string) bool { _, ok := flags[name]; return ok }
	if err := o.Complete(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		return o, err
	}
	return o, o.Validate()
}

func TestServeLimitsConfig(t *testing.T) {
	cmd := newServeCmd(&globals{streams: defaultStreams()})
	for _, name := range []string{"redis", "rate-limit-fail-mode"} {
		if cmd.Flags().Lookup(name) == nil {
			t.Fatalf("serve has no --%s flag", name)
		}
	}

	file := writeFile(t, `
limits:
  redis: redis://file:6379/0
  failMode: closed
  window: 30s
  key: {rpm: 60, tpm: 1000, maxConcurrency: 4}
  tenant: {rpm: 600}
  models:
    big: {key: {tpm: 100}}
`)
	o, err := completeLimits(t, file, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := o.cfg.Limits
	if l.Redis != "redis://file:6379/0" || l.FailMode != limits.FailClosed || l.Window != 30*time.Second ||
		l.Key != (limits.LimitSet{RPM: 60, TPM: 1000, MaxConcurrency: 4}) || l.Tenant.RPM != 600 || l.Models["big"].Key.TPM != 100 {
		t.Fatalf("limits from the file: %+v", l)
	}

	env := map[string]string{"LLMCTL_REDIS": "redis://env:6379/0", "LLMCTL_RATE_LIMIT_FAIL_MODE": "open"}
	o, err = completeLimits(t, file, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Limits.Redis != "redis://env:6379/0" || o.cfg.Limits.FailMode != limits.FailOpen || o.cfg.Limits.Key.RPM != 60 {
		t.Fatalf("env over file: %+v", o.cfg.Limits)
	}

	o, err = completeLimits(t, file, env, map[string]string{"redis": "redis://flag:6379/1", "rate-limit-fail-mode": "closed"})
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Limits.Redis != "redis://flag:6379/1" || o.cfg.Limits.FailMode != limits.FailClosed {
		t.Fatalf("flags over env: %+v", o.cfg.Limits)
	}

	o, err = completeLimits(t, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Limits.Redis != "" {
		t.Fatalf("default should keep limits in process: %+v", o.cfg.Limits)
	}
}

func TestServeLimitsConfigErrors(t *testing.T) {
	for name, c := range map[string]struct {
		file  string
		flags map[string]string
		want  string
	}{
		"fail mode flag":    {flags: map[string]string{"rate-limit-fail-mode": "sometimes"}, want: `fail mode "sometimes"`},
		"bad redis url":     {flags: map[string]string{"redis": "http://nope"}, want: "limits.redis"},
		"unknown key":       {file: "limits:\n  rpm: 5\n", want: "rpm"},
		"negative limit":    {file: "limits:\n  key: {tpm: -1}\n", want: "negative"},
		"unknown model key": {file: "limits:\n  models:\n    m: {key: {rpn: 1}}\n", want: "rpn"},
	} {
		t.Run(name, func(t *testing.T) {
			file := ""
			if c.file != "" {
				file = writeFile(t, c.file)
			}
			_, err := completeLimits(t, file, nil, c.flags)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error mentioning %q, got %v", c.want, err)
			}
		})
	}
}
