package limits

import (
	"context"
	"sync"
	"time"
)

// memStore is the in-process store: one mutex over a map, the same
// arithmetic as the Redis script. It serves a single gateway instance and is
// the Redis store's fallback while Redis is unreachable.
type memStore struct {
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]*memBucket
	slots   map[string]map[string]int64 // slots key → ticket → expiry (unix ms)
	ops     int
}

type memBucket struct {
	c       counters
	expires int64 // unix ms; like the Redis key's TTL
}

func newMemStore(now func() time.Time) *memStore {
	if now == nil {
		now = time.Now
	}
	return &memStore{now: now, buckets: map[string]*memBucket{}, slots: map[string]map[string]int64{}}
}

func (m *memStore) admit(_ context.Context, r admitRequest) (admitResult, error) {
	now := m.now().UnixMilli()
	win := r.window.Milliseconds()
	wid := now / win
	res := admitResult{wid: wid, elapsed: now - wid*win, state: make([]bucketState, len(r.buckets))}

	m.mu.Lock()
	defer m.mu.Unlock()
	m.maybeSweep(now)
	for i, b := range r.buckets {
		var st bucketState
		if b.rpm > 0 || b.tpm > 0 {
			if mb := m.buckets[b.counter]; mb != nil && mb.expires > now {
				st.counters = mb.c.at(wid)
			} else {
				st.counters = counters{W: wid}
			}
		}
		if b.conc > 0 {
			held := m.slots[b.slots]
			for id, exp := range held {
				if exp <= now {
					delete(held, id)
				}
			}
			st.inUse = int64(len(held))
		}
		res.state[i] = st
		if res.dim != dimNone {
			continue
		}
		switch {
		case b.rpm > 0 && over(b.rpm, st.RP, st.RC, 1, res.elapsed, win):
			res.dim = dimRequests
		case b.tpm > 0 && over(b.tpm, st.TP, st.TC, r.tokens, res.elapsed, win):
			res.dim = dimTokens
		case b.conc > 0 && st.inUse >= b.conc:
			res.dim = dimConcurrency
		}
		if res.dim != dimNone {
			res.denied = i
		}
	}
	if res.dim != dimNone {
		return res, nil
	}
	res.admitted = true
	for i := range r.buckets {
		m.count(r, i, &res.state[i], now, win)
	}
	return res, nil
}

// count adds request r to bucket i, whose state as of r's window is st,
// and takes r's concurrency slot there. Caller holds mu.
func (m *memStore) count(r admitRequest, i int, st *bucketState, now, win int64) {
	b := r.buckets[i]
	if b.rpm > 0 || b.tpm > 0 {
		st.RC++
		st.TC += r.tokens
		if mb := m.buckets[b.counter]; mb != nil { // in place: no allocation per request
			mb.c, mb.expires = st.counters, now+2*win+1000
		} else {
			m.buckets[b.counter] = &memBucket{c: st.counters, expires: now + 2*win + 1000}
		}
	}
	if b.conc > 0 {
		held := m.slots[b.slots]
		if held == nil {
			held = map[string]int64{}
			m.slots[b.slots] = held
		}
		held[r.ticket] = now + r.lease.Milliseconds()
		st.inUse++
	}
}

// mirror counts r without deciding anything: as the Redis store's fallback,
// this store also counts what Redis admits for this replica, so that an
// outage starts from what the replica already admitted in the window (see
// Limiter.admit). It returns the window r was counted in, for unmirror and
// settle.
func (m *memStore) mirror(r admitRequest) int64 {
	now := m.now().UnixMilli()
	win := r.window.Milliseconds()
	wid := now / win
	m.mu.Lock()
	defer m.mu.Unlock()
	m.maybeSweep(now)
	for i, b := range r.buckets {
		st := bucketState{counters: counters{W: wid}}
		if mb := m.buckets[b.counter]; mb != nil && mb.expires > now {
			st.counters = mb.c.at(wid)
		}
		m.count(r, i, &st, now, win)
	}
	return wid
}

// unmirror takes back a mirror of a request that Redis did not admit.
func (m *memStore) unmirror(r admitRequest, wid int64) {
	m.release(settleRequest{buckets: r.buckets, ticket: r.ticket, wid: wid, delta: -r.tokens}, -1)
}

func (m *memStore) settle(_ context.Context, r settleRequest) error {
	m.release(r, 0)
	return nil
}

// release corrects r's window by r.delta tokens and requests (0, or -1 to
// take a request back), and frees r's slots.
func (m *memStore) release(r settleRequest, requests int64) {
	now := m.now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range r.buckets {
		if mb := m.buckets[b.counter]; mb != nil && mb.expires > now && (r.delta != 0 || requests != 0) {
			switch mb.c.W {
			case r.wid:
				mb.c.TC = max(0, mb.c.TC+r.delta)
				mb.c.RC = max(0, mb.c.RC+requests)
			case r.wid + 1:
				mb.c.TP = max(0, mb.c.TP+r.delta)
				mb.c.RP = max(0, mb.c.RP+requests)
			}
		}
		if held := m.slots[b.slots]; held != nil {
			// An emptied set stays for the next request (maybeSweep drops
			// it): dropping it here made a new map for every request.
			delete(held, r.ticket)
		}
	}
}

func (m *memStore) renew(_ context.Context, slots []slotRef, lease time.Duration) error {
	exp := m.now().UnixMilli() + lease.Milliseconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range slots {
		if held := m.slots[s.key]; held != nil {
			if _, ok := held[s.ticket]; ok { // like ZADD XX: never resurrect
				held[s.ticket] = exp
			}
		}
	}
	return nil
}

// maybeSweep drops expired buckets now and then so that keys that stop
// sending do not keep memory forever. Caller holds mu.
func (m *memStore) maybeSweep(now int64) {
	m.ops++
	if m.ops%4096 != 0 {
		return
	}
	for k, b := range m.buckets {
		if b.expires <= now {
			delete(m.buckets, k)
		}
	}
	for k, held := range m.slots {
		for id, exp := range held {
			if exp <= now {
				delete(held, id)
			}
		}
		if len(held) == 0 {
			delete(m.slots, k)
		}
	}
}
