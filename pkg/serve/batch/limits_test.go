package batch_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/redis/go-redis/v9"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/limits"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// TestBatchLinesKeepOutOfInteractiveRPM: a key limited to 2 requests a
// minute runs a batch of 5 lines, then still has both of its interactive
// requests (the third is refused: the limiter counts); at its limit, it
// still gets the lines of a second batch run. On the in-process limiter
// and on Redis (two replicas' shared counters).
func TestBatchLinesKeepOutOfInteractiveRPM(t *testing.T) {
	for name, open := range map[string]func(t *testing.T, cfg limits.Config) *limits.Limiter{
		"Memory": func(t *testing.T, cfg limits.Config) *limits.Limiter {
			l, err := limits.NewMemory(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		},
		"Redis": func(t *testing.T, cfg limits.Config) *limits.Limiter {
			rdb := redis.NewClient(&redis.Options{Addr: testenv.RD(t).Addr()})
			t.Cleanup(func() { rdb.Close() })
			cfg.Prefix = fmt.Sprintf("llmctl:rl:%s:%d:", t.Name(), time.Now().UnixNano())
			l, err := limits.NewRedis(rdb, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		},
	} {
		t.Run(name, func(t *testing.T) {
			dsn := sqliteDSN(t)
			e := newEnv(t, dsn, batch.Limits{})
			lim := open(t, limits.Config{Key: billing.Limits{RPM: 5}, Window: time.Hour})
			e.regateway(t, dsn, func(o *serve.Options) { o.Admitter = lim })
			c := e.client(e.keyA)
			ctx := context.Background()
			// Each call of the Files and Batches API is a request of the
			// key (2 a batch here); the batch's progress is read from the
			// store, not polled through the API.
			newBatch := func(n int) string {
				t.Helper()
				var lines []string
				for i := range n {
					lines = append(lines, chatLine(fmt.Sprintf("l%d", i), "double-model", "hi"))
				}
				return create(t, c, upload(t, c, strings.Join(lines, "\n")).ID).ID
			}
			runAll := func(id string, n int64) {
				t.Helper()
				stop := e.startWorker()
				defer stop()
				b := e.waitStatus(t, id, batch.StatusCompleted)
				if b.Completed != n || b.Failed != 0 {
					t.Fatalf("batch of %d: completed %d failed %d", n, b.Completed, b.Failed)
				}
			}
			chat := func() error {
				_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "double-model",
					Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
				return err
			}
			runAll(newBatch(5), 5) // 2 requests of the key, 5 lines
			b2 := newBatch(3)      // 4
			if err := chat(); err != nil {
				t.Fatalf("interactive request after a batch of 5 lines: %v", err)
			}
			var apiErr *openai.Error
			if err := chat(); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("sixth request of the key: %v, want 429 (RPM 5)", err)
			}
			runAll(b2, 3) // the key is at its RPM limit
			if d := e.debits(t); len(d) != 9 {
				t.Fatalf("%d debits, want 8 lines + 1 interactive request", len(d))
			}
		})
	}
}

// TestBatchOnlyLimitsThrottleLines: with a batch-only RPM of 2 per key, a
// batch of 3 lines waits for the third instead of failing it; the wait
// ends with the worker, and the line runs after the restart.
func TestBatchOnlyLimitsThrottleLines(t *testing.T) {
	dsn := sqliteDSN(t)
	e := newEnv(t, dsn, batch.Limits{})
	lim, err := limits.NewMemory(limits.Config{Key: billing.Limits{RPM: 3}, Batch: limits.ModelLimits{Key: billing.Limits{RPM: 2}}, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer lim.Close()
	e.regateway(t, dsn, func(o *serve.Options) { o.Admitter = lim })
	c := e.client(e.keyA)
	var lines []string
	for i := range 3 {
		lines = append(lines, chatLine(fmt.Sprintf("l%d", i), "double-model", "hi"))
	}
	b := create(t, c, upload(t, c, strings.Join(lines, "\n")).ID)
	stop := e.startWorker()
	e.waitLines(t, b.ID, 2)
	stop() // the third line waits an hour for the batch RPM; the stop ends its wait
	cur, err := e.bs.Batch(context.Background(), e.tenantA, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Completed != 2 || cur.Failed != 0 || cur.Status != batch.StatusInProgress {
		t.Fatalf("after the stop: %s completed %d failed %d, want 2 done and the third waiting", cur.Status, cur.Completed, cur.Failed)
	}
	// The key's interactive RPM is its own.
	if _, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "double-model",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}); err != nil {
		t.Fatalf("interactive request beside a throttled batch: %v", err)
	}
	if d := e.debits(t); len(d) != 3 {
		t.Fatalf("%d debits, want 3 (2 lines + 1 interactive)", len(d))
	}
}
