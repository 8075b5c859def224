package main

import (
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/limits"
)

func TestServeLimitsConfig(t *testing.T) {
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
	o, err := completeServe(t, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := o.cfg.Limits
	if l.Redis != "redis://file:6379/0" || l.FailMode != limits.FailClosed || l.Window != 30*time.Second ||
		l.Key != (limits.LimitSet{RPM: 60, TPM: 1000, MaxConcurrency: 4}) || l.Tenant.RPM != 600 || l.Models["big"].Key.TPM != 100 {
		t.Fatalf("limits from the file: %+v", l)
	}

	env := map[string]string{"LLMCTL_REDIS": "redis://env:6379/0", "LLMCTL_RATE_LIMIT_FAIL_MODE": "open"}
	o, err = completeServe(t, file, env)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Limits.Redis != "redis://env:6379/0" || o.cfg.Limits.FailMode != limits.FailOpen || o.cfg.Limits.Key.RPM != 60 {
		t.Fatalf("env over file: %+v", o.cfg.Limits)
	}

	o, err = completeServe(t, file, env, "--redis", "redis://flag:6379/1", "--rate-limit-fail-mode", "closed")
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Limits.Redis != "redis://flag:6379/1" || o.cfg.Limits.FailMode != limits.FailClosed {
		t.Fatalf("flags over env: %+v", o.cfg.Limits)
	}

	o, err = completeServe(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Limits.Redis != "" {
		t.Fatalf("default should keep limits in process: %+v", o.cfg.Limits)
	}
}

func TestServeLimitsConfigErrors(t *testing.T) {
	for name, c := range map[string]struct {
		file string
		args []string
		want string
	}{
		"fail mode flag":    {args: []string{"--rate-limit-fail-mode", "sometimes"}, want: `fail mode "sometimes"`},
		"bad redis url":     {args: []string{"--redis", "http://nope"}, want: "limits.redis"},
		"unknown key":       {file: "limits:\n  rpm: 5\n", want: "rpm"},
		"negative limit":    {file: "limits:\n  key: {tpm: -1}\n", want: "negative"},
		"unknown model key": {file: "limits:\n  models:\n    m: {key: {rpn: 1}}\n", want: "rpn"},
	} {
		t.Run(name, func(t *testing.T) {
			file := ""
			if c.file != "" {
				file = writeFile(t, c.file)
			}
			_, err := completeServe(t, file, nil, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error mentioning %q, got %v", c.want, err)
			}
		})
	}
}
