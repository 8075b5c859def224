package limits

import (
	"context"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
)

// A settlement queued by Done lands on its own (the flusher), so another
// replica sees the freed slot without this one admitting anything else.
func TestRedisQueuedSettleLandsWithoutAnotherAdmit(t *testing.T) {
	c := redisClient(t)
	cfg := Config{Window: time.Hour, Key: billing.Limits{MaxConcurrency: 1}}
	a, err := NewRedis(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewRedis(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := principal()
	tk := admitOK(t, a, p, "m", 0)
	admitRefused(t, b, p, "m", 0, "concurrent")
	tk.Done(context.Background(), billing.Usage{})
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := b.Admit(context.Background(), p, "m", 0)
		if err == nil {
			got.Done(context.Background(), billing.Usage{})
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other replica still refused 5s after Done: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Done returns before Redis hears of it; a replica that dies right then
// (settlements queued, never sent) leaks nothing: the slots expire with
// their lease, like those of a request in flight, and the unsent token
// correction leaves the full reservation counted (never an overshoot).
func TestRedisQueuedSettlesOfADeadReplicaExpire(t *testing.T) {
	c := redisClient(t)
	lease := time.Second
	cfg := Config{Window: time.Hour, SlotLease: lease, Key: billing.Limits{MaxConcurrency: 1, TPM: 100}}
	dead, err := NewRedis(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dead.settler.paused = make(chan struct{}) // the flusher never sends
	p := principal()
	tk := admitOK(t, dead, p, "m", 60)
	tk.Done(context.Background(), billing.Usage{CompletionTokens: 1}) // queued only
	if n := len(dead.settler.pending); n != 1 {
		t.Fatalf("%d settlements queued, want 1", n)
	}
	dead.Close() // dies: a paused flusher sends nothing on close either
	other, err := NewRedis(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	admitRefused(t, other, p, "m", 0, "concurrent") // the lost release: slot still held
	time.Sleep(lease + lease/2)
	// The slot expired; the 60 reserved tokens are still counted (the
	// correction to 1 was lost), so 41 more do not fit but 40 do.
	admitRefused(t, other, p, "m", 41, "tokens per minute")
	admitOK(t, other, p, "m", 40).Done(context.Background(), billing.Usage{})
}

// A settlement queued before an Admit on the same replica is applied before
// that Admit is decided, even while an earlier batch is still on the wire:
// sequential requests at a concurrency limit of 1 are never refused.
func TestRedisSequentialRequestsAtConcurrencyOne(t *testing.T) {
	l, err := NewRedis(redisClient(t), Config{Window: time.Hour, Key: billing.Limits{MaxConcurrency: 1, TPM: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := principal()
	for range 300 {
		tk := admitOK(t, l, p, "m", 10)
		tk.Done(context.Background(), billing.Usage{CompletionTokens: 1})
	}
	// 300 settles each corrected 10 reserved tokens to 1 used.
	tk := admitOK(t, l, p, "m", 0)
	if got := headerInt(t, tk.Header(), "x-ratelimit-remaining-tokens"); got != 1000-300 {
		t.Fatalf("remaining tokens %d, want %d: a token correction was lost or late", got, 1000-300)
	}
	tk.Done(context.Background(), billing.Usage{})
}

// A settle carried by the next Admit after Redis lost its scripts (a
// restart or SCRIPT FLUSH) is applied exactly once: the combined script is
// atomic, so NOSCRIPT means none of it ran and the retry runs it all once.
func TestRedisCarriedSettleAfterScriptFlushAppliesOnce(t *testing.T) {
	c := redisClient(t)
	l, err := NewRedis(c, Config{Window: time.Hour, Key: billing.Limits{TPM: 100, MaxConcurrency: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := principal()
	admitOK(t, l, p, "m", 60).Done(context.Background(), billing.Usage{CompletionTokens: 10}) // queued
	if err := c.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	tk := admitOK(t, l, p, "m", 0) // carries the settle: slot freed, 60 reserved → 10 used
	if got := headerInt(t, tk.Header(), "x-ratelimit-remaining-tokens"); got != 90 {
		t.Fatalf("remaining tokens %d, want 90: the correction applied %s", got, map[bool]string{true: "twice", false: "not at all"}[got < 90])
	}
	tk.Done(context.Background(), billing.Usage{})
}
