package limits

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed limiter.lua
var limiterLua string

// redisStore runs every decision as one EVALSHA of limiter.lua. go-redis's
// Script.Run sends EVALSHA and, on NOSCRIPT (a restarted or flushed Redis),
// falls back to EVAL, which also loads the script for the next call.
type redisStore struct {
	rdb    redis.Scripter
	pipe   func() redis.Pipeliner // nil when the client cannot pipeline
	script *redis.Script
}

func newRedisStore(rdb redis.Scripter) *redisStore {
	s := &redisStore{rdb: rdb, script: redis.NewScript(limiterLua)}
	if p, ok := rdb.(interface{ Pipeline() redis.Pipeliner }); ok {
		s.pipe = p.Pipeline
	}
	return s
}

func admitArgs(r admitRequest) ([]string, []any) {
	keys := make([]string, 0, 2*len(r.buckets))
	args := make([]any, 0, 5+3*len(r.buckets))
	args = append(args, "admit", r.window.Milliseconds(), r.lease.Milliseconds(), r.ticket, r.tokens)
	for _, b := range r.buckets {
		keys = append(keys, b.counter, b.slots)
		args = append(args, b.args[:]...)
	}
	return keys, args
}

func settleArgs(r settleRequest) ([]string, []any) {
	keys := make([]string, 0, 2*len(r.buckets))
	for _, b := range r.buckets {
		keys = append(keys, b.counter, b.slots)
	}
	return keys, []any{"settle", r.wid, r.delta, r.ticket}
}

func (s *redisStore) admit(ctx context.Context, r admitRequest) (admitResult, error) {
	keys, args := admitArgs(r)
	return admitResultOf(r, s.script.Run(ctx, s.rdb, keys, args...))
}

func admitResultOf(r admitRequest, cmd *redis.Cmd) (admitResult, error) {
	v, err := cmd.Int64Slice()
	if err != nil {
		return admitResult{}, fmt.Errorf("rate limit script: %w", err)
	}
	if len(v) != 5+5*len(r.buckets) {
		return admitResult{}, fmt.Errorf("rate limit script: %d values for %d buckets", len(v), len(r.buckets))
	}
	res := admitResult{
		admitted: v[0] == 1, wid: v[1], elapsed: v[2], denied: int(v[3]), dim: int(v[4]),
		state: make([]bucketState, len(r.buckets)),
	}
	for i := range r.buckets {
		o := 5 + 5*i
		res.state[i] = bucketState{
			counters: counters{W: res.wid, RP: v[o], RC: v[o+1], TP: v[o+2], TC: v[o+3]},
			inUse:    v[o+4],
		}
	}
	return res, nil
}

func (s *redisStore) settle(ctx context.Context, r settleRequest) error {
	keys, args := settleArgs(r)
	return settleErr(s.script.Run(ctx, s.rdb, keys, args...).Err())
}

func settleErr(err error) error {
	if err != nil && err != redis.Nil {
		return fmt.Errorf("rate limit settle: %w", err)
	}
	return nil
}

// settleAdmit runs settles, then one admit, as a single script run: one
// round trip and one script start instead of two, and atomic, so a NOSCRIPT
// (which Script.Run answers with EVAL) means none of it ran. All the keys
// share the tenant's hash tag (settles are taken per owner, see settler), as
// one script's keys must in Redis Cluster.
func (s *redisStore) settleAdmit(ctx context.Context, settles []settleRequest, r admitRequest) (admitResult, error) {
	keys := make([]string, 0, 2*len(r.buckets)*(len(settles)+1))
	args := make([]any, 0, 2+4*len(settles)+4+3*len(r.buckets))
	args = append(args, "settle_admit", len(settles))
	for _, sr := range settles {
		for _, b := range sr.buckets {
			keys = append(keys, b.counter, b.slots)
		}
		args = append(args, 2*len(sr.buckets), sr.wid, sr.delta, sr.ticket)
	}
	akeys, aargs := admitArgs(r)
	keys = append(keys, akeys...)
	args = append(args, aargs[1:]...) // without "admit"
	return admitResultOf(r, s.script.Run(ctx, s.rdb, keys, args...))
}

// pipelined sends settles as a single pipeline: one round trip. Commands
// that failed with NOSCRIPT had no effect; only they are sent again
// (through Script.Run, which loads the script), because a settle is not
// idempotent (its token correction would apply twice).
func (s *redisStore) pipelined(ctx context.Context, settles []settleRequest) error {
	p := s.pipe()
	cmds := make([]*redis.Cmd, 0, len(settles))
	for _, r := range settles {
		keys, args := settleArgs(r)
		cmds = append(cmds, s.script.EvalSha(ctx, p, keys, args...))
	}
	_, _ = p.Exec(ctx) // errors are per command, below
	var fail error
	for i, r := range settles {
		err := cmds[i].Err()
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			keys, args := settleArgs(r)
			err = s.script.Run(ctx, s.rdb, keys, args...).Err()
		}
		if err = settleErr(err); err != nil && fail == nil {
			fail = err
		}
	}
	return fail
}

func (s *redisStore) renew(ctx context.Context, slots []slotRef, lease time.Duration) error {
	if len(slots) == 0 {
		return nil
	}
	keys := make([]string, len(slots))
	args := make([]any, 0, 2+len(slots))
	args = append(args, "renew", strconv.FormatInt(lease.Milliseconds(), 10))
	for i, sl := range slots {
		keys[i] = sl.key
		args = append(args, sl.ticket)
	}
	err := s.script.Run(ctx, s.rdb, keys, args...).Err()
	if err != nil && err != redis.Nil {
		return fmt.Errorf("rate limit renew: %w", err)
	}
	return nil
}
