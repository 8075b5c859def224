package accuracy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmctl/llmctl/internal/llmctltest"
	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
)

func TestMain(m *testing.M) { os.Exit(llmctltest.Main(m)) }

// Limits per key, each on its own model so the three checks do not
// interfere; the general key and tenant limits are left unset.
const (
	rpm       = 30
	tpm       = 1500
	maxConc   = 3
	maxTokens = 100 // per request; the double answers 60 completion tokens
	replicas  = 3
	workers   = 6 // per replica
)

// window is the limits' window for this test: five minutes, so that the
// phases (about a second on a quiet machine, far more under -race on a
// loaded 2-core one) have minutes of slack inside one window.
const window = 5 * time.Minute

const config = `limits:
  window: 5m
  models:
    m-rpm:  {key: {rpm: %d}}
    m-tpm:  {key: {tpm: %d}}
    m-conc: {key: {maxConcurrency: %d}}
    m-out:  {key: {rpm: 100000}}
`

type outcome struct {
	status    int
	code      string
	msg       string
	totalToks int64
	header    http.Header
}

func chat(ctx context.Context, base, key, model, prompt string) (outcome, error) {
	body, _ := json.Marshal(map[string]any{"model": model, "max_tokens": maxTokens,
		"messages": []map[string]string{{"role": "user", "content": prompt}}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return outcome{}, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return outcome{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return outcome{}, err
	}
	var v struct {
		Usage struct {
			Total int64 `json:"total_tokens"`
		} `json:"usage"`
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return outcome{}, fmt.Errorf("status %d, body %q: %w", resp.StatusCode, raw, err)
	}
	return outcome{status: resp.StatusCode, code: v.Error.Code, msg: v.Error.Message, totalToks: v.Usage.Total, header: resp.Header}, nil
}

// hammer sends attempts requests per worker, workers per replica, all at
// once, and returns every outcome.
func hammer(t *testing.T, servers []*llmctltest.Server, key, model, prompt string, attempts int) []outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	var out []outcome
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, s := range servers {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for range attempts {
					o, err := chat(ctx, s.URL, key, model, prompt)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					out = append(out, o)
					mu.Unlock()
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	return out
}

func count(os []outcome, status int) (n int) {
	for _, o := range os {
		if o.status == status {
			n++
		}
	}
	return n
}

func TestLimitsExactAcrossReplicas(t *testing.T) {
	rd := testenv.RD(t)
	rdb := redis.NewClient(&redis.Options{Addr: rd.Addr()})
	defer rdb.Close()

	// The backend double, wrapped to count requests in flight at the backend:
	// a request reaches it only while it holds a concurrency slot. A request
	// stops counting when its answer starts: the gateway frees the slot
	// once it has the answer, which can be before this handler's own return
	// runs (on a loaded box it did, counting 10 "in flight" under a limit
	// of 3 with only 9 requests admitted).
	dbl := upstreamdouble.Start(t, upstreamdouble.Options{Models: []string{"m-rpm", "m-tpm", "m-conc", "m-out"}})
	var inFlight, maxInFlight atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/chat/completions" {
			n := inFlight.Add(1)
			for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
			}
			aw := &answerStart{ResponseWriter: w, end: func() { inFlight.Add(-1) }}
			defer aw.ended()
			w = aw
		}
		dbl.ServeHTTP(w, r)
	}))
	defer backend.Close()

	dir := t.TempDir()
	cfg := filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, config, rpm, tpm, maxConc), 0o600); err != nil {
		t.Fatal(err)
	}
	db := "sqlite:" + filepath.Join(dir, "shared.db")
	// Generous Redis timeouts: with the default 500ms a loaded 2-core
	// machine can time a decision out, and failing open then limits per
	// replica (up to 3× the limit in flight), which is the fallback's
	// documented behaviour, not what this test measures.
	redisURL := rd.URL() + "?read_timeout=10s&write_timeout=10s&dial_timeout=10s"
	args := []string{"--config", cfg, "--redis", redisURL, "--backend", "dbl=" + backend.URL}
	first := llmctltest.Start(t, llmctltest.Options{DB: db, Args: args})
	key := first.AdminKey
	if key == "" {
		t.Fatalf("no admin key printed:\n%s", first.Stdout())
	}
	servers := []*llmctltest.Server{first}
	for range replicas - 1 {
		servers = append(servers, llmctltest.Start(t, llmctltest.Options{DB: db, Args: args}))
	}

	// Everything below must happen inside one window of Redis's clock: do
	// not start in its last two minutes.
	now := func() time.Time {
		tm, err := rdb.Time(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	if at := now(); window-at.Sub(at.Truncate(window)) < 2*time.Minute {
		left := window - at.Sub(at.Truncate(window))
		wait := left + 200*time.Millisecond
		t.Logf("waiting %s for the next window to start", wait.Round(time.Second))
		time.Sleep(wait)
	}
	began := now()
	minute := began.Truncate(window)

	// RPM: 90 attempts over 3 replicas → exactly 30 admitted.
	rs := hammer(t, servers, key, "m-rpm", "hello tokens=1", 5)
	okN, limited := count(rs, http.StatusOK), count(rs, http.StatusTooManyRequests)
	for _, o := range rs {
		if o.status == http.StatusTooManyRequests {
			if o.code != "rate_limit_exceeded" || o.header.Get("Retry-After") == "" ||
				o.header.Get("x-ratelimit-remaining-requests") != "0" || o.header.Get("x-ratelimit-limit-requests") != strconv.Itoa(rpm) {
				t.Fatalf("429 without OpenAI's shape or headers: %+v", o)
			}
		} else if o.status == http.StatusOK && o.header.Get("x-ratelimit-limit-requests") != strconv.Itoa(rpm) {
			t.Fatalf("200 without x-ratelimit headers: %v", o.header)
		}
	}
	t.Logf("RPM: limit %d, %d attempts over %d replicas → %d admitted, %d refused (429)", rpm, len(rs), replicas, okN, limited)
	if okN != rpm || limited != len(rs)-rpm {
		t.Errorf("RPM %d: admitted %d, refused %d of %d; want exactly %d admitted", rpm, okN, limited, len(rs), rpm)
	}

	// TPM: each request reserves max_tokens + prompt estimate (> 100) and
	// uses 61 (1 prompt + 60 completion), so settling to actual admits more
	// than reservations alone would, but never more than TPM in the window.
	ts := hammer(t, servers, key, "m-tpm", "tokens=60", 4)
	var used int64
	for _, o := range ts {
		if o.status == http.StatusOK {
			used += o.totalToks
		}
	}
	okT := count(ts, http.StatusOK)
	t.Logf("TPM: limit %d, %d attempts → %d admitted using %d tokens (reservations alone would admit %d); bound: %d (no request used more than it reserved)",
		tpm, len(ts), okT, used, tpm/(maxTokens+1), tpm)
	if used > tpm {
		t.Errorf("TPM %d exceeded: %d tokens used by admitted requests in one window", tpm, used)
	}
	if okT == 0 || count(ts, http.StatusTooManyRequests) == 0 {
		t.Errorf("TPM phase did not reach the limit: %d admitted of %d", okT, len(ts))
	}

	// Concurrency: slow requests; the backend never sees more than 3 at once.
	cs := hammer(t, servers, key, "m-conc", "delay=150ms tokens=1", 3)
	okC, limC := count(cs, http.StatusOK), count(cs, http.StatusTooManyRequests)
	t.Logf("concurrency: limit %d, %d attempts → %d admitted, %d refused; max in flight at the backend: %d",
		maxConc, len(cs), okC, limC, maxInFlight.Load())
	if maxInFlight.Load() > maxConc {
		t.Errorf("max concurrency %d exceeded: %d in flight at the backend", maxConc, maxInFlight.Load())
		// What each replica's limiter said (a fallback to per-replica limits
		// is logged): the evidence for why.
		for i, s := range servers {
			for _, l := range strings.Split(s.Stderr(), "\n") {
				if strings.Contains(l, "rate limit") || strings.Contains(l, "redis") {
					t.Logf("replica %d: %s", i, l)
				}
			}
		}
	}
	if okC == 0 || limC == 0 {
		t.Errorf("concurrency phase admitted %d and refused %d: want both", okC, limC)
	}
	for _, o := range cs {
		if o.status == http.StatusTooManyRequests && !strings.Contains(o.msg, "concurrent") {
			t.Errorf("unexpected refusal: %s", o.msg)
		}
	}
	// Every slot was given back: the key's slot set in Redis is empty. Done
	// queues its release off the request path, so allow the last few a
	// moment to land. (An emptied sorted set is deleted; the RPM counter
	// shows the naming.)
	if n, err := rdb.Keys(context.Background(), "llmctl:rl:*:m:m-rpm:w").Result(); err != nil || len(n) != 1 {
		t.Fatalf("expected one RPM counter key for the m-rpm model: %v %v", n, err)
	}
	slotKeys, err := rdb.Keys(context.Background(), "llmctl:rl:*:m:m-conc:c").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range slotKeys {
		n := rdb.ZCard(context.Background(), k).Val()
		for wait := 0; n != 0 && wait < 100; wait++ {
			time.Sleep(20 * time.Millisecond)
			n = rdb.ZCard(context.Background(), k).Val()
		}
		if n != 0 {
			t.Errorf("%d concurrency slots still held in %s 2s after the load", n, k)
		}
	}

	storedTenantLimit(t, servers, db)

	t.Logf("all phases took %s", now().Sub(began).Round(time.Millisecond))
	if end := now().Truncate(window); !end.Equal(minute) {
		t.Fatalf("the test ran past its window (%s → %s); the RPM/TPM figures above span two windows", minute, end)
	}

	disconnectReleasesSlots(t, servers, key, rdb)
	outageMidLoad(t, servers, key, rd, rdb)
}

// storedTenantLimit: limits stored with a tenant by `llmctl tenants create
// --rpm` apply on every replica, to all of the tenant's keys together.
func storedTenantLimit(t *testing.T, servers []*llmctltest.Server, db string) {
	const stored = 5
	llmctl := func(args ...string) []byte {
		out, err := exec.Command(llmctltest.Binary(t), append(args, "--db", db)...).Output()
		if err != nil {
			t.Fatalf("llmctl %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	llmctl("tenants", "create", "capped", "--rpm", strconv.Itoa(stored))
	var keys []string
	for range 2 {
		var k struct{ Key string }
		if err := json.Unmarshal(llmctl("keys", "create", "--tenant", "capped", "-o", "json"), &k); err != nil || k.Key == "" {
			t.Fatalf("keys create -o json: %v", err)
		}
		keys = append(keys, k.Key)
	}
	var all []outcome
	for _, k := range keys {
		all = append(all, hammer(t, servers, k, "m-out", "tokens=1", 1)...)
	}
	t.Logf("stored tenant RPM: limit %d, %d attempts with 2 keys over %d replicas → %d admitted",
		stored, len(all), len(servers), count(all, http.StatusOK))
	if got := count(all, http.StatusOK); got != stored {
		t.Errorf("tenant stored RPM %d: admitted %d", stored, got)
	}
}

// disconnectReleasesSlots holds every concurrency slot with streams that
// stall, one per replica, then hangs up: the slots must come back.
func disconnectReleasesSlots(t *testing.T, servers []*llmctltest.Server, key string, rdb *redis.Client) {
	ctx, hangUp := context.WithCancel(context.Background())
	defer hangUp()
	started := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{"model": "m-conc", "stream": true, "max_tokens": 10,
				"messages": []map[string]string{{"role": "user", "content": "stall-after=1 tokens=5"}}})
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/chat/completions", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				started <- err
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				started <- fmt.Errorf("stream: status %d", resp.StatusCode)
				return
			}
			buf := make([]byte, 1)
			_, err = resp.Body.Read(buf) // the first event is on its way: the slot is held
			started <- err
			_, _ = io.Copy(io.Discard, resp.Body) // until we hang up
		}()
	}
	for range servers {
		if err := <-started; err != nil {
			t.Fatal(err)
		}
	}
	held := func() (n int64) {
		for _, k := range rdb.Keys(context.Background(), "llmctl:rl:*:m:m-conc:c").Val() {
			n += rdb.ZCard(context.Background(), k).Val()
		}
		return n
	}
	if n := held(); n != int64(len(servers)) {
		t.Fatalf("%d slots held by %d open streams", n, len(servers))
	}
	hangUp()
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for held() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d slots still held 10s after the clients hung up", held())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("disconnect: %d stalled streams held %d slots; all released after the clients hung up", len(servers), len(servers))
}

// outageMidLoad kills the real Redis while the replicas are under load and
// starts it again: failing open, every request is still answered, the
// decisions made without Redis are counted, and the limiter goes back to
// Redis by itself.
func outageMidLoad(t *testing.T, servers []*llmctltest.Server, key string, rd *testenv.Redis, rdb *redis.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for _, s := range servers {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					o, err := chat(context.Background(), s.URL, key, "m-out", "tokens=1")
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					statuses[o.status]++
					mu.Unlock()
				}
			}()
		}
	}
	time.Sleep(300 * time.Millisecond)
	if err := rd.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := rd.Start(); err != nil {
		t.Fatal(err)
	}
	// Redis came back empty (no persistence): once a replica's decision
	// reaches it again, the m-out counter reappears.
	deadline := time.Now().Add(15 * time.Second)
	for len(rdb.Keys(context.Background(), "llmctl:rl:*:m:m-out:w").Val()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no replica went back to Redis after it restarted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	wg.Wait()

	var errs float64
	for _, s := range servers {
		errs += metric(t, s.AdminURL, `llmctl_ratelimit_decisions_total{result="error",scope="key"}`)
	}
	t.Logf("outage mid-load: responses by status %v; decisions without Redis (result=error): %.0f", statuses, errs)
	if len(statuses) != 1 || statuses[http.StatusOK] == 0 {
		t.Errorf("failing open, every request should be answered 200: %v", statuses)
	}
	if errs == 0 {
		t.Error("no decision was counted as made without Redis")
	}
	if !strings.Contains(servers[0].Stderr()+servers[1].Stderr()+servers[2].Stderr(), "redis reachable again") {
		t.Error("no replica logged Redis coming back")
	}
}

// metric reads one sample from a replica's /metrics.
func metric(t *testing.T, adminURL, series string) float64 {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// answerStart calls end once, when the answer's first byte or header is
// written (or, failing that, when the handler returns).
type answerStart struct {
	http.ResponseWriter
	end  func()
	once sync.Once
}

func (a *answerStart) ended() { a.once.Do(a.end) }

func (a *answerStart) WriteHeader(code int) {
	a.ended()
	a.ResponseWriter.WriteHeader(code)
}

func (a *answerStart) Write(b []byte) (int, error) {
	a.ended()
	return a.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (a *answerStart) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// Flush keeps streaming answers streaming through the wrapper.
func (a *answerStart) Flush() {
	a.ended()
	if f, ok := a.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
