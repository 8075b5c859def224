package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadmeFlowWithPrices is the README's first flow with billing on: the
// bootstrap admin key's curl to the demo model answers 200 under --prices
// (the admin tenant is charged, never refused), a tenant never credited
// gets a 402 that says so, and `ledger spend --by user` shows the charge
// per end user, the same through the admin API and the database.
func TestReadmeFlowWithPrices(t *testing.T) {
	dir, dsn, st, adminKey := sqliteWithAdmin(t)
	acmeKey := tenantWithKey(t, st, "acme")
	st.Close()
	prices := filepath.Join(dir, "prices.yaml")
	if err := os.WriteFile(prices, []byte("models:\n  demo-kjv-ngram: {input: 100000, output: 300000, perRequest: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	g := startGateway(t, buildLLMCtl(t), []string{"serve", "--db", dsn, "--listen", "127.0.0.1:0", "--admin-listen", "off",
		"--prices", prices, "--spool-dir", filepath.Join(dir, "spool")}, &logs)
	defer g.cmd.Process.Kill()
	chat := func(key, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, g.url+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// The README's curl, byte for byte, then the same with an end user.
	readme := `{"model":"demo-kjv-ngram","messages":[{"role":"user","content":"hi"}],"max_tokens":24,"temperature":0.7}`
	if code, b := chat(adminKey, readme); code != http.StatusOK {
		t.Fatalf("README curl with --prices: %d %s\n%s", code, b, logs.String())
	}
	withUser := strings.Replace(readme, `"max_tokens":24`, `"max_tokens":24,"user":"reader-1"`, 1)
	if code, b := chat(adminKey, withUser); code != http.StatusOK {
		t.Fatalf("with user: %d %s", code, b)
	}
	code, b := chat(acmeKey, readme)
	if code != http.StatusPaymentRequired || !strings.Contains(b, "no credit yet") || !strings.Contains(b, "may cost up to 0.0000") {
		t.Fatalf("a tenant never credited: %d %s", code, b)
	}

	type row struct {
		Tenant      string
		User        *string
		SpentMicros int64
		Requests    int64
	}
	spend := func(args ...string) []row {
		t.Helper()
		out, errOut, err := run(t, append([]string{"ledger", "spend", "--by", "user", "-o", "json"}, args...)...)
		var rows []row
		if err != nil || json.Unmarshal([]byte(out), &rows) != nil {
			t.Fatalf("ledger spend --by user %v: %v %s %s", args, err, out, errOut)
		}
		return rows
	}
	// Through the admin API while serving (settled entries reach the
	// database within a batch delay).
	var remote []row
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		remote = spend("--server", g.url, "--api-key", adminKey)
		if len(remote) == 2 || time.Now().After(deadline) {
			break
		}
	}
	if len(remote) != 2 || remote[0].Tenant != "admin" || *remote[0].User != "" || *remote[1].User != "reader-1" ||
		remote[0].Requests != 1 || remote[1].Requests != 1 || remote[0].SpentMicros <= 1 || remote[1].SpentMicros <= 1 {
		t.Fatalf("spend by user through the API: %+v", remote)
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.done:
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	local := spend("--db", dsn)
	if len(local) != 2 || local[0].SpentMicros != remote[0].SpentMicros || local[1].SpentMicros != remote[1].SpentMicros {
		t.Fatalf("spend by user from the database %+v, through the API %+v", local, remote)
	}
	// The admin tenant went below zero by exactly what it was charged.
	var bal struct{ BalanceMicros, ReservedMicros int64 }
	out, errOut, err := run(t, "ledger", "balance", "admin", "-o", "json", "--db", dsn)
	if err != nil || json.Unmarshal([]byte(out), &bal) != nil {
		t.Fatalf("ledger balance admin: %v %s %s", err, out, errOut)
	}
	if bal.BalanceMicros != -(local[0].SpentMicros+local[1].SpentMicros) || bal.ReservedMicros != 0 {
		t.Fatalf("admin balance %+v, spend %+v", bal, local)
	}
}
