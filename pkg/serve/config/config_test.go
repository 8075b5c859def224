package config

import (
	"strings"
	"testing"
	"time"
)

func TestMergeFileStrictAndLayered(t *testing.T) {
	c := Defaults("sqlite:/tmp/x.db")
	err := c.MergeFile("serve.yaml", strings.NewReader("timeouts:\n  connect: 1s\n  firstbyte: 2s\n"))
	if err == nil || !strings.Contains(err.Error(), "firstbyte") || !strings.Contains(err.Error(), "serve.yaml") {
		t.Fatalf("unknown nested key: %v", err)
	}
	c = Defaults("sqlite:/tmp/x.db")
	if err := c.MergeFile("serve.yaml", strings.NewReader("timeouts:\n  connect: 1s\naliases: {a: b}\n")); err != nil {
		t.Fatal(err)
	}
	if c.Timeouts.Connect != time.Second || c.Timeouts.FirstByte != 60*time.Second || c.Aliases["a"] != "b" || c.Listen != "127.0.0.1:8080" {
		t.Fatalf("file over defaults: %+v", c)
	}
	if err := c.MergeFile("empty.yaml", strings.NewReader("  \n")); err != nil {
		t.Fatalf("an empty file is no change: %v", err)
	}
}

func TestMergeEnv(t *testing.T) {
	c := Defaults("sqlite:/tmp/x.db")
	env := map[string]string{"LLMCTL_BACKENDS": " a=http://x , ,b=http://y", "LLMCTL_KEY_CACHE_TTL": "250ms", "LLMCTL_ADMIN_LISTEN": "off", "LLMCTL_LISTEN": "  ",
		"LLMCTL_BODY_BUDGET_BYTES": "1000000", "LLMCTL_BODY_READ_TIMEOUT": "5s"}
	if err := c.MergeEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if len(c.Backends) != 2 || c.Backends[1].URL != "http://y" || c.KeyCacheTTL != 250*time.Millisecond || c.AdminListen != "off" || c.Listen != "127.0.0.1:8080" {
		t.Fatalf("%+v", c)
	}
	if c.BodyBudgetBytes != 1000000 || c.BodyReadTimeout != 5*time.Second {
		t.Fatalf("body bounds from env: %d %s", c.BodyBudgetBytes, c.BodyReadTimeout)
	}
	for k, v := range map[string]string{"LLMCTL_SHUTDOWN_GRACE": "soon", "LLMCTL_MAX_BODY_BYTES": "big", "LLMCTL_BODY_BUDGET_BYTES": "lots", "LLMCTL_BODY_READ_TIMEOUT": "later"} {
		c := Defaults("sqlite:/tmp/x.db")
		err := c.MergeEnv(func(key string) (string, bool) { return v, key == k })
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
}

func TestValidateReportsEverything(t *testing.T) {
	c := Config{KeyCacheTTL: 2 * time.Second, BodyBudgetBytes: -1, Backends: []Backend{{URL: "x"}, {Name: "a", URL: "http://a", Weight: -1}}}
	err := c.Validate()
	for _, want := range []string{"listen", "db", "maxBodyBytes", "bodyBudgetBytes", "bodyReadTimeout", "keyCacheTTL", "backends[0].name", "backends[0].url", "backends[1]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validation error lacks %q: %v", want, err)
		}
	}
	d := Defaults("sqlite:/tmp/x.db")
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults must be valid: %v", err)
	}
}

// adminAPI comes from the file, LLMCTL_ADMIN_API or the default "api", and
// a bad value or "admin" without an admin listener names the key.
func TestConfigAdminAPI(t *testing.T) {
	c := Defaults("sqlite:/tmp/x.db")
	if c.AdminAPI != "api" {
		t.Fatalf("default adminAPI = %q, want api", c.AdminAPI)
	}
	if err := c.MergeFile("serve.yaml", strings.NewReader("adminAPI: admin\n")); err != nil || c.AdminAPI != "admin" {
		t.Fatalf("from file: %q %v", c.AdminAPI, err)
	}
	if err := c.MergeEnv(func(k string) (string, bool) { return "off", k == "LLMCTL_ADMIN_API" }); err != nil || c.AdminAPI != "off" {
		t.Fatalf("from env: %q %v", c.AdminAPI, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("off is valid: %v", err)
	}
	for _, tc := range []struct{ api, adminListen, want string }{
		{"public", "127.0.0.1:9090", `adminAPI: "public" must be`},
		{"", "127.0.0.1:9090", `adminAPI: "" must be`},
		{"admin", "off", `adminAPI: "admin" needs the admin listener`},
	} {
		c := Defaults("sqlite:/tmp/x.db")
		c.AdminAPI, c.AdminListen = tc.api, tc.adminListen
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("adminAPI=%q adminListen=%q: %v, want %q", tc.api, tc.adminListen, err, tc.want)
		}
	}
}

// A backend's protocols come from the file only; unknown or repeated names
// are refused naming the entry.
func TestBackendProtocols(t *testing.T) {
	c := Defaults("sqlite:/tmp/x.db")
	doc := "backends:\n  - name: v\n    url: http://v\n    protocols: [chat, responses, messages, rerank]\n"
	if err := c.MergeFile("serve.yaml", strings.NewReader(doc)); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || len(c.Backends[0].Protocols) != 4 {
		t.Fatalf("%+v %v", c.Backends, err)
	}
	c.Backends[0].Protocols = []string{"chat", "grpc", "chat"}
	err := c.Validate()
	for _, want := range []string{`backends[0].protocols[1]: unknown protocol "grpc"`, `backends[0].protocols[2]: "chat" listed twice`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("lacks %q: %v", want, err)
		}
	}
	if b, err := ParseBackend("x=http://x"); err != nil || b.Protocols != nil {
		t.Fatalf("the flag form is chat only: %+v %v", b, err)
	}
}
