package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/llmctltest"
	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/top"
	"github.com/llmctl/llmctl/pkg/top/toptest"
)

func TestMain(m *testing.M) { os.Exit(llmctltest.Main(m)) }

const model = "double-model"

// stack is serve + double + traffic, restartable on the same admin port.
type stack struct {
	t         *testing.T
	db        string
	double    *upstreamdouble.Double
	adminAddr string
	srv       *llmctltest.Server
	apiURL    atomic.Value // string
	key       string
	sent      atomic.Int64
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (s *stack) start() {
	s.srv = llmctltest.Start(s.t, llmctltest.Options{DB: s.db, Args: []string{"--backend", "a=" + s.double.URL(), "--admin-listen", s.adminAddr}})
	if s.srv.AdminKey != "" {
		s.key = s.srv.AdminKey
	}
	s.apiURL.Store(s.srv.URL)
}

// chat sends one request and returns its usage (zero on failure: the
// gateway may be down on purpose).
func (s *stack) chat(ctx context.Context) (in, out int64) {
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hello top tokens=4"}]}`, model)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.apiURL.Load().(string)+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	var r struct {
		Usage struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&r) != nil {
		return 0, 0
	}
	s.sent.Add(1)
	return r.Usage.PromptTokens, r.Usage.CompletionTokens
}

// traffic sends requests every gap until ctx ends.
func (s *stack) traffic(ctx context.Context, gap time.Duration) {
	for ctx.Err() == nil {
		s.chat(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(gap):
		}
	}
}

// populate writes a tenant with known entries into serve's database.
func populate(t *testing.T, dsn string) {
	now := time.Now()
	toptest.Ledger(t, dsn, []string{"acme"}, func(ids map[string]string) []ledger.Entry {
		e := func(key string, k ledger.Kind, amt ledger.Micros, ago time.Duration, reason string) ledger.Entry {
			return ledger.Entry{Key: key, TenantID: ids["acme"], Kind: k, Amount: amt, Model: model, PromptTokens: 7, CompletionTokens: 4, Reason: reason, Time: now.Add(-ago)}
		}
		return []ledger.Entry{
			e("c1", ledger.KindCredit, 20*ledger.Unit, 48*time.Hour, "top-up invoice 7"),
			e("d1", ledger.KindDebit, -ledger.Unit, 5*time.Hour, ""),
			e("d2", ledger.KindDebit, -125_000, 40*time.Minute, ""),
			e("d3", ledger.KindDebit, -125_000, 20*time.Minute, ""),
			e("d4", ledger.KindDebit, -125_000, 2*time.Minute, ""),
		}
	})
}

// newStack starts a double, serve on a fixed admin address, and a
// populated ledger in serve's database.
func newStack(t *testing.T) *stack {
	s := &stack{t: t, db: "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db"), adminAddr: freeAddr(t)}
	s.double = upstreamdouble.Start(t, upstreamdouble.Options{Name: "a", Models: []string{model}})
	s.start()
	populate(t, s.db)
	return s
}

// tmux drives one tmux server on a private socket.
type tmux struct {
	t    *testing.T
	sock string
}

func (x *tmux) run(args ...string) (string, error) {
	out, err := exec.Command("tmux", append([]string{"-L", x.sock}, args...)...).CombinedOutput()
	return string(out), err
}

func (x *tmux) screen() string {
	out, err := x.run("capture-pane", "-p", "-t", "top")
	if err != nil {
		return ""
	}
	return out
}

func (x *tmux) keys(keys ...string) {
	x.t.Helper()
	for _, k := range keys {
		if out, err := x.run("send-keys", "-t", "top", k); err != nil {
			x.t.Fatalf("send-keys %s: %v %s", k, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitScreen polls the screen until ok says so, or fails with the last one.
func (x *tmux) waitScreen(what string, timeout time.Duration, ok func(string) bool) string {
	x.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if last = x.screen(); ok(last) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	x.t.Fatalf("screen never showed %s; last screen:\n%s", what, last)
	return ""
}

func startTmux(t *testing.T, w, h int, command string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		testenv.Unavailable(t, "tmux not installed (make deps installs it)")
	}
	x := &tmux{t: t, sock: fmt.Sprintf("llmctl-top-%d", os.Getpid())}
	t.Cleanup(func() { x.run("kill-server") })
	if out, err := x.run("new-session", "-d", "-s", "top", "-x", strconv.Itoa(w), "-y", strconv.Itoa(h), command); err != nil {
		t.Fatalf("tmux new-session: %v %s", err, out)
	}
	return x
}

// row returns the fields of the screen line whose first field is name.
func row(screen, name string) []string {
	for _, l := range strings.Split(screen, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return f
		}
	}
	return nil
}

func num(s string) float64 {
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

func TestTopInTmux(t *testing.T) {
	s := newStack(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in, out := s.chat(ctx)
	if out != 4 || in == 0 {
		t.Fatalf("probe request usage in=%d out=%d", in, out)
	}
	go s.traffic(ctx, 50*time.Millisecond)

	bin := llmctltest.Binary(t)
	target := "http://" + s.adminAddr + "/metrics"
	x := startTmux(t, 120, 40, fmt.Sprintf("exec %s top --target %s --db %s --interval 1s", bin, target, s.db))

	// Traffic: the model's row with rates. Each request has `in` prompt and
	// 4 completion tokens, so tokens/s over requests/s must be those counts,
	// whatever the window and the rate.
	scr := x.waitScreen("the model row with traffic", 30*time.Second, func(sc string) bool {
		r := row(sc, model)
		return len(r) >= 10 && num(r[1]) > 0 && num(r[7]) > 0
	})
	t.Logf("screen with traffic:\n%s", scr)
	r := row(scr, model)
	rps, tokIn, tokOut := num(r[1]), num(r[6]), num(r[7])
	if got := tokOut / rps; math.Abs(got-4) > 0.4 {
		t.Errorf("tok/s out %v / req/s %v = %v, want 4 per request\n%s", tokOut, rps, got, scr)
	}
	if got := tokIn / rps; math.Abs(got-float64(in)) > 0.1*float64(in) {
		t.Errorf("tok/s in %v / req/s %v = %v, want %d per request\n%s", tokIn, rps, got, in, scr)
	}
	if r[2] == "-" || r[3] == "-" {
		t.Errorf("no p50/p99 for a model with traffic: %v", r)
	}
	if !strings.Contains(scr, "1/1 targets up") {
		t.Errorf("header:\n%s", scr)
	}
	// Ledger: acme's numbers are exact.
	scr = x.waitScreen("acme's ledger row", 15*time.Second, func(sc string) bool { return row(sc, "acme") != nil })
	if a := row(scr, "acme"); strings.Join(a, " ") != "acme 18.6250 0.3750 1.3750 3 4" {
		t.Errorf("acme row = %v, want balance 18.6250, spend 0.3750/1.3750, 3/4 requests\n%s", a, scr)
	}

	// --once -o json against the same serve and database.
	once, err := exec.Command(bin, "top", "--once", "-o", "json", "--target", target, "--db", s.db).Output()
	if err != nil {
		t.Fatalf("top --once: %v", err)
	}
	t.Logf("top --once -o json:\n%s", once)
	var snap top.Snapshot
	if err := json.Unmarshal(once, &snap); err != nil {
		t.Fatalf("--once output is not a snapshot: %v", err)
	}
	if len(snap.Targets) != 1 || !snap.Targets[0].Up || snap.Traffic == nil || len(snap.Traffic.Models) != 1 {
		t.Fatalf("--once snapshot: %s", once)
	}
	if m := snap.Traffic.Models[0]; m.Model != model || m.RPS <= 0 || math.Abs(m.TokensOutPS/m.RPS-4) > 0.4 {
		t.Errorf("--once model stats: %+v", m)
	}
	var acme *top.TenantRow
	for i := range snap.Tenants {
		if snap.Tenants[i].Name == "acme" {
			acme = &snap.Tenants[i]
		}
	}
	if acme == nil || acme.Balance != 18_625_000 || acme.Spend1h != 375_000 || acme.Spend24h != 1_375_000 || acme.Requests1h != 3 || acme.Requests24h != 4 {
		t.Errorf("--once acme = %+v", acme)
	}

	// Drill down: tab to the ledger, filter to acme, enter.
	x.keys("Tab", "Tab", "/", "a", "c", "m", "e", "Enter", "Enter")
	x.waitScreen("acme's entries", 15*time.Second, func(sc string) bool {
		return strings.Contains(sc, "newest entries") && strings.Contains(sc, "top-up invoice 7") && strings.Contains(sc, "-0.1250")
	})
	x.keys("Escape", "Escape")

	// The gateway goes away: shown in the pane, no crash.
	if err := s.srv.Stop(t, 10*time.Second); err != nil {
		t.Logf("serve stop: %v", err)
	}
	x.waitScreen("the target down", 15*time.Second, func(sc string) bool {
		return strings.Contains(sc, "0/1 targets up") && strings.Contains(sc, s.adminAddr)
	})
	// …and comes back on the same admin address: rates again.
	s.start()
	x.waitScreen("recovery with traffic", 30*time.Second, func(sc string) bool {
		r := row(sc, model)
		return strings.Contains(sc, "1/1 targets up") && len(r) >= 10 && num(r[1]) > 0
	})

	x.keys("q")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := x.run("has-session", "-t", "top"); err != nil {
			break // top exited and took the session with it
		}
		if time.Now().After(deadline) {
			t.Fatalf("q did not quit; screen:\n%s", x.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTopCPU measures top's CPU use at 1 s refresh against serve with
// traffic: user+system time from bash's `times` (getrusage of children)
// over a fixed wall period. Set LLMCTL_TOP_CPU_SECONDS to run it; it
// reports, it does not assert (timings are never asserted).
func TestTopCPU(t *testing.T) {
	secs, _ := strconv.Atoi(os.Getenv("LLMCTL_TOP_CPU_SECONDS"))
	if secs <= 0 {
		t.Skip("set LLMCTL_TOP_CPU_SECONDS=60 to measure")
	}
	s := newStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.traffic(ctx, 50*time.Millisecond)

	out := filepath.Join(t.TempDir(), "times")
	bin := llmctltest.Binary(t)
	script := fmt.Sprintf(`start=$(date +%%s.%%N); %s top --target http://%s/metrics --db %s --interval 1s; end=$(date +%%s.%%N); { times; echo "$start $end"; } > %s`,
		bin, s.adminAddr, s.db, out)
	x := startTmux(t, 120, 40, "bash -c '"+script+"'")
	x.waitScreen("traffic", 30*time.Second, func(sc string) bool { r := row(sc, model); return len(r) > 1 && num(r[1]) > 0 })
	time.Sleep(time.Duration(secs) * time.Second)
	t.Logf("screen at the end:\n%s", x.screen())
	x.keys("q")
	var b []byte
	for i := 0; i < 100 && !bytes.Contains(b, []byte(" ")); i++ {
		time.Sleep(100 * time.Millisecond)
		b, _ = os.ReadFile(out)
	}
	// `times` prints the shell's then the children's "XmY.YYYs XmY.YYYs".
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 3 {
		t.Fatalf("times output: %q", b)
	}
	var cu, cs, start, end float64
	parse := func(v string) float64 {
		var m int
		var sec float64
		fmt.Sscanf(v, "%dm%fs", &m, &sec)
		return float64(m)*60 + sec
	}
	f := strings.Fields(lines[1])
	cu, cs = parse(f[0]), parse(f[1])
	fmt.Sscanf(lines[2], "%f %f", &start, &end)
	wall := end - start
	t.Logf("llmctl top at 1s refresh: user %.2fs + sys %.2fs over %.1fs wall = %.2f%% of one core (%d requests served meanwhile)",
		cu, cs, wall, 100*(cu+cs)/wall, s.sent.Load())
}

// TestTopNoColor: with NO_COLOR the screen carries no colour sequences;
// without it, the down target's header is coloured. Nothing needs to
// answer: an unreachable target is drawn, not fatal.
func TestTopNoColor(t *testing.T) {
	bin := llmctltest.Binary(t)
	target := "http://" + freeAddr(t) + "/metrics" // closed
	for _, noColor := range []bool{true, false} {
		// termenv (under lipgloss) treats any CI variable as "not a
		// terminal" and drops colour, so the colour case unsets it too.
		env := "env -u NO_COLOR -u CI"
		if noColor {
			env = "env NO_COLOR=1"
		}
		x := startTmux(t, 100, 30, fmt.Sprintf("%s TERM=xterm-256color %s top --target %s --interval 200ms", env, bin, target))
		x.waitScreen("the target down", 15*time.Second, func(sc string) bool {
			return strings.Contains(sc, "0/1 targets up") && strings.Contains(sc, "connection refused")
		})
		esc, err := x.run("capture-pane", "-e", "-p", "-t", "top")
		if err != nil {
			t.Fatal(err)
		}
		coloured := strings.Contains(esc, "\x1b[38;5;") || strings.Contains(esc, "\x1b[31m") || strings.Contains(esc, "\x1b[1;31m") || strings.Contains(esc, ";31m")
		if noColor && coloured {
			t.Errorf("NO_COLOR=1 but the screen has colour:\n%q", esc)
		}
		if !noColor && !coloured {
			t.Errorf("no colour without NO_COLOR:\n%q", esc)
		}
		x.keys("q")
		x.run("kill-server")
	}
}
