package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// completeServe completes serve options as if flags (name → value) were
// given on the command line, with env as the only environment.
func completeServe(t *testing.T, configFile string, env map[string]string, flags map[string]string, backends ...string) (*serveOptions, error) {
	t.Helper()
	g := &globals{streams: defaultStreams(), ConfigFile: configFile, LogLevel: "info"}
	o := &serveOptions{g: g, listen: flags["listen"], adminListen: flags["admin-listen"], adminAPI: flags["admin-api"], db: flags["db"], backends: backends}
	o.changed = func(name string) bool {
		if name == "backend" {
			return len(backends) > 0
		}
		_, ok := flags[name]
		return ok
	}
	if err := o.Complete(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		return o, err
	}
	return o, o.Validate()
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "serve.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServeConfigPrecedence(t *testing.T) {
	file := writeFile(t, `
listen: 127.0.0.1:1111
adminListen: 127.0.0.1:2222
db: sqlite:/tmp/from-file.db
keyCacheTTL: 200ms
backends:
  - name: filebackend
    url: http://127.0.0.1:7000
    models: [m]
    weight: 3
aliases:
  gpt: m
`)
	env := map[string]string{"LLMCTL_LISTEN": "127.0.0.1:3333", "LLMCTL_DB": "sqlite:/tmp/from-env.db"}

	o, err := completeServe(t, file, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Listen != "127.0.0.1:3333" || c.DB != "sqlite:/tmp/from-env.db" || c.AdminListen != "127.0.0.1:2222" ||
		c.KeyCacheTTL != 200*time.Millisecond || len(c.Backends) != 1 || c.Backends[0].Weight != 3 || c.Aliases["gpt"] != "m" {
		t.Fatalf("env over file over defaults: %+v", c)
	}

	o, err = completeServe(t, file, env, map[string]string{"listen": "127.0.0.1:4444"}, "x=http://127.0.0.1:9", "y=http://127.0.0.1:10")
	if err != nil {
		t.Fatal(err)
	}
	c = o.cfg
	if c.Listen != "127.0.0.1:4444" || c.DB != "sqlite:/tmp/from-env.db" || len(c.Backends) != 2 || c.Backends[1].Name != "y" {
		t.Fatalf("flags over env: %+v", c)
	}

	o, err = completeServe(t, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Listen != "127.0.0.1:8080" || o.cfg.AdminListen != "127.0.0.1:9090" || !strings.HasSuffix(o.cfg.DB, filepath.Join("llmctl", "llmctl.db")) {
		t.Fatalf("defaults: %+v", o.cfg)
	}
}

func TestServeConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name, file string
		env        map[string]string
		flags      map[string]string
		backends   []string
		want       string
	}{
		{"unknown key", "listen: x\nlisten_port: 9\n", nil, nil, nil, "listen_port"},
		{"unknown nested key", "backends:\n  - name: a\n    url: http://x\n    modles: [m]\n", nil, nil, nil, "modles"},
		{"bad backend flag", "", nil, nil, []string{"nourl"}, "NAME=URL"},
		{"bad backend url", "", nil, nil, []string{"a=ftp://x"}, "http://"},
		{"bad env backends", "", map[string]string{"LLMCTL_BACKENDS": "a=http://x,broken"}, nil, nil, "LLMCTL_BACKENDS"},
		{"cache ttl too long", "keyCacheTTL: 5s\n", nil, nil, nil, "keyCacheTTL"},
		{"bad db", "", nil, map[string]string{"db": "mysql://x"}, nil, "postgres://"},
		{"duplicate backend", "", nil, nil, []string{"a=http://x", "a=http://y"}, "used twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := ""
			if c.file != "" {
				file = writeFile(t, c.file)
			}
			_, err := completeServe(t, file, c.env, c.flags, c.backends...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one naming %q", err, c.want)
			}
		})
	}
}

func TestServeCommandRejectsUnknownConfigKey(t *testing.T) {
	file := writeFile(t, "listen: 127.0.0.1:0\nbogus: 1\n")
	_, _, err := run(t, "serve", "--config", file)
	if err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("err = %v, want it to name the key", err)
	}
}

// --admin-api beats LLMCTL_ADMIN_API beats the file's adminAPI; a bad value
// is refused naming the key.
func TestServeConfigAdminAPI(t *testing.T) {
	file := writeFile(t, "adminAPI: off\n")
	o, err := completeServe(t, file, nil, nil)
	if err != nil || o.cfg.AdminAPI != "off" {
		t.Fatalf("file: %q %v", o.cfg.AdminAPI, err)
	}
	env := map[string]string{"LLMCTL_ADMIN_API": "admin"}
	if o, err = completeServe(t, file, env, nil); err != nil || o.cfg.AdminAPI != "admin" {
		t.Fatalf("env: %q %v", o.cfg.AdminAPI, err)
	}
	if o, err = completeServe(t, file, env, map[string]string{"admin-api": "api"}); err != nil || o.cfg.AdminAPI != "api" {
		t.Fatalf("flag: %q %v", o.cfg.AdminAPI, err)
	}
	if _, err = completeServe(t, "", nil, map[string]string{"admin-api": "public"}); err == nil || !strings.Contains(err.Error(), "adminAPI") {
		t.Fatalf("bad --admin-api: %v", err)
	}
}
