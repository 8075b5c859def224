package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// TestServeBatchReplicasKill runs two `llmctl serve` replicas on one
// PostgreSQL. A batch runs on whichever replica holds its lease; that
// replica is SIGKILLed mid-batch, the other takes the batch over once the
// lease has ended, and the killed one is restarted on its spool (as its
// pod would be), which settles or releases what it left unsettled. Then:
// the batch completes, every custom_id is in the output or error file
// exactly once, the ledger charged Σ of the lines' usage at the batch price
// to the micro-unit (one charge a line, reruns included), and `llmctl
// ledger verify` is clean. LLMCTL_BATCH_E2E_LINES sets the batch's size
// (default 400).
func TestServeBatchReplicasKill(t *testing.T) {
	ctx := context.Background()
	nLines := tortureSize("LLMCTL_BATCH_E2E_LINES", 400)
	pg := testenv.PG(t)
	dsn := pg.NewDatabase(t)
	bin := buildLLMCtl(t)
	double := upstreamdouble.Start(t, upstreamdouble.Options{Models: []string{"m"}})

	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	tn, err := st.CreateTenant(ctx, "acme", billing.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := st.CreateKey(ctx, store.NewKey{Tenant: tn.ID})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	ls, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	const funds = 100 * ledger.Unit
	if _, err := ls.Apply(ctx, []ledger.Entry{{Key: "fund", TenantID: tn.ID, Kind: ledger.KindCredit, Amount: funds, Time: time.Now()}}); err != nil {
		t.Fatal(err)
	}

	// The batch price is half the interactive one: 1 µ a prompt token and
	// 3 µ a completion token, so a line costs exactly P + 3C µ.
	dir := t.TempDir()
	prices := filepath.Join(dir, "prices.yaml")
	cfg := filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(prices, []byte("models:\n  m: {input: 2000000, output: 6000000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("batch:\n  leaseTTL: 3s\n  leaseRenew: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logf := gatewayLog(t, dir)
	gws := startFleet(t, bin, 2, func(i int) []string {
		return []string{"serve", "--config", cfg, "--db", dsn, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--log-level", "info",
			"--backend", "d=" + double.URL(), "--prices", prices, "--spool-dir", filepath.Join(dir, fmt.Sprint("spool", i))}
	}, logf)
	client := func(i int) openai.Client {
		return openai.NewClient(option.WithBaseURL(gws.url(i)+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	}

	var input bytes.Buffer
	for i := range nLines {
		fmt.Fprintf(&input, `{"custom_id":"c%05d","method":"POST","url":"/v1/chat/completions","body":{"model":"m","max_tokens":16,"messages":[{"role":"user","content":"line %d delay=10ms tokens=%d"}]}}`+"\n",
			i, i, 1+i%7)
	}
	c0 := client(0)
	f, err := c0.Files.New(ctx, openai.FileNewParams{Purpose: openai.FilePurposeBatch,
		File: openai.File(bytes.NewReader(input.Bytes()), "input.jsonl", "application/jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c0.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID,
		Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()

	db := stdlib.OpenDB(*mustPGConfig(t, dsn))
	defer db.Close()
	done := func() int64 {
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT completed + failed FROM batches WHERE id = $1`, b.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(90 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (%d of %d lines done)", what, done(), nLines)
			}
		}
	}

	// Kill the replica that holds the lease, a quarter of the way in.
	waitFor("a quarter of the batch", func() bool { return done() >= int64(nLines/4) })
	var owner string
	if err := db.QueryRowContext(ctx, `SELECT lease_owner FROM batches WHERE id = $1`, b.ID).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	victim := -1
	for i, g := range gws.all() {
		if strings.Contains(owner, fmt.Sprintf("/%d/", g.cmd.Process.Pid)) {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("lease owner %q is neither replica", owner)
	}
	gws.kill(victim)
	atKill := done()
	t.Logf("replica %d (lease owner %s) SIGKILLed at %d of %d lines", victim, owner, atKill, nLines)

	// The other replica takes the batch once the lease has ended, and
	// works on; then the killed one comes back on its spool.
	waitFor("the other replica to take the batch over", func() bool { return done() > atKill+int64(nLines/10) })
	gws.restart(victim)
	survivor := 1 - victim
	c := client(survivor)
	waitFor("the batch to complete", func() bool {
		cur, err := c.Batches.Get(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.Status == openai.BatchStatusFailed || cur.Status == openai.BatchStatusCancelled || cur.Status == openai.BatchStatusExpired {
			t.Fatalf("batch %s", cur.Status)
		}
		b = cur
		return cur.Status == openai.BatchStatusCompleted
	})
	elapsed := time.Since(start)

	// Every custom_id exactly once in output ∪ errors; usage priced by hand.
	seen := map[string]int{}
	var want int64
	var lines int
	for _, id := range []string{b.OutputFileID, b.ErrorFileID} {
		if id == "" {
			continue
		}
		resp, err := c.Files.Content(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			// The body is a chat completion, read with the client's own type.
			var l struct {
				CustomID string `json:"custom_id"`
				Response struct {
					StatusCode int                   `json:"status_code"`
					Body       openai.ChatCompletion `json:"body"`
				} `json:"response"`
			}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("output line %s: %v", sc.Bytes(), err)
			}
			if u := l.Response.Body.Usage; l.Response.StatusCode != 200 || u.CompletionTokens == 0 {
				t.Errorf("line %s failed: %s", l.CustomID, sc.Bytes())
			} else {
				want += u.PromptTokens + 3*u.CompletionTokens
			}
			seen[l.CustomID]++
			lines++
		}
	}
	if lines != nLines || len(seen) != nLines {
		t.Fatalf("%d lines with %d custom ids in output ∪ errors, want %d", lines, len(seen), nLines)
	}

	// Drain: a graceful stop writes each replica's spool into PostgreSQL.
	for i, g := range gws.all() {
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("replica %d did not shut down", i)
		}
	}

	// The backend's requests per line: some lines ran twice (those in
	// flight at the kill), none is charged twice.
	runs := map[string]int{}
	for _, r := range double.Records() {
		id, _, _ := strings.Cut(r.RequestID, "#")
		if rest, ok := strings.CutPrefix(id, b.ID+"-"); ok {
			line, _, _ := strings.Cut(rest, "-")
			runs[line]++
		}
	}
	reruns := 0
	for _, n := range runs {
		reruns += n - 1
	}
	if len(runs) != nLines {
		t.Fatalf("the backend saw %d of %d lines", len(runs), nLines)
	}
	es, err := ls.Entries(ctx, ledger.Filter{TenantID: tn.ID})
	if err != nil {
		t.Fatal(err)
	}
	var charged int64
	perLine := map[string]int{}
	for _, e := range es {
		rid, ok := ledger.BatchLineRequestID(e.Key)
		if !ok || e.Kind != ledger.KindDebit {
			continue
		}
		rest, _ := strings.CutPrefix(rid, b.ID+"-")
		line, _, _ := strings.Cut(rest, "-")
		if _, err := strconv.Atoi(line); err != nil {
			t.Fatalf("a charge of another batch: %s", e.Key)
		}
		perLine[line]++
		charged -= int64(e.Amount)
	}
	for line, n := range perLine {
		if n != 1 {
			t.Errorf("line %s charged %d times", line, n)
		}
	}
	if len(perLine) != nLines || charged != want {
		t.Fatalf("%d lines charged %d µ in all; want %d lines and %d µ (Σ usage at the batch price)", len(perLine), charged, nLines, want)
	}
	a, err := ls.Account(ctx, tn.ID)
	if err != nil || int64(a.Balance) != int64(funds)-want || a.Reserved != 0 {
		t.Fatalf("account %+v, %v; want %d µ left and nothing reserved", a, err, int64(funds)-want)
	}
	out, err := exec.Command(bin, "ledger", "verify", "--db", dsn).CombinedOutput()
	if err != nil {
		t.Fatalf("llmctl ledger verify: %v\n%s", err, out)
	}
	t.Logf("%d lines in %s (%.0f lines/s) through a kill; %d lines ran twice, each charged once: %d µ; ledger verify: %s",
		nLines, elapsed.Round(time.Millisecond), float64(nLines)/elapsed.Seconds(), reruns, charged, strings.TrimSpace(string(out)))
}

func mustPGConfig(t *testing.T, dsn string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
