package serve

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// BenchmarkBatchPolicySim simulates the admission of batch lines beside
// interactive traffic, to see what a non-preemptive policy can give (the
// goal of issue 24: interactive p50 +≤5 %, p99 +≤10 %, the batch ≥90 % of
// the slot time interactive traffic leaves). Events, not time: c slots,
// every answer takes the same time S, interactive requests arrive as a
// Poisson process (seeded) at 80 % of c/S and are served first in arrival
// order, a batch never runs out of lines, a line that has its slot keeps
// it for S. Each policy is run against the same arrivals without the
// batch. The policies are the queue's own: batchShare's cap and the
// headroom (headroomAllows, autoHeadroom). It measures the scheduling
// only, no gateway (BenchmarkBatchInterference in pkg/serve/batch does
// that); it ignores b.N (-benchtime 1x).
func BenchmarkBatchPolicySim(b *testing.B) {
	const (
		load    = 0.8
		horizon = 20000 // service times simulated per run
	)
	type policy struct {
		name  string
		allow func(c, inter, lines int) bool
	}
	share := func(s float64) policy {
		return policy{fmt.Sprintf("batchShare %.2f", s), func(c, _, lines int) bool {
			return lines < max(1, int(math.Floor(s*float64(c))))
		}}
	}
	headroom := func(name string, h func(c int) int) policy {
		return policy{name, func(c, inter, lines int) bool {
			return headroomAllows(int64(c), int64(c-inter-lines), h(c))
		}}
	}
	auto := func(c int) int { return autoHeadroom(load * float64(c)) }
	for _, c := range []int{4, 16, 64, 256} {
		base := simQueue(c, load, horizon, nil)
		fmt.Printf("policy sim: %d slots, interactive at %.0f%%, alone p50 %.3f S p99 %.3f S, %.0f%% of requests wait\n",
			c, load*100, base.p50, base.p99, base.waited*100)
		for _, p := range []policy{
			share(1), share(0.5), share(0.25),
			headroom(fmt.Sprintf("headroom auto (h=%d)", auto(c)), auto),
			headroom("headroom 1", func(int) int { return 1 }),
			headroom("headroom 2", func(int) int { return 2 }),
			headroom("headroom 3", func(int) int { return 3 }),
			headroom("headroom 4", func(int) int { return 4 }),
		} {
			r := simQueue(c, load, horizon, p.allow)
			fmt.Printf("policy sim: %d slots, %-22s p50 ×%.3f p99 ×%.3f, batch %.0f%% of the slot time left, %.0f%% of requests wait\n",
				c, p.name, r.p50/base.p50, r.p99/base.p99, r.used*100, r.waited*100)
		}
	}
}

type simResult struct{ p50, p99, used, waited float64 }

type simEvent struct {
	t    float64
	kind int // simArrival, simInteractiveEnd, simLineEnd
}

const (
	simArrival = iota
	simInteractiveEnd
	simLineEnd
)

type simEvents []simEvent

func (h simEvents) Len() int           { return len(h) }
func (h simEvents) Less(i, j int) bool { return h[i].t < h[j].t }
func (h simEvents) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *simEvents) Push(x any)        { *h = append(*h, x.(simEvent)) }
func (h *simEvents) Pop() any {
	o := *h
	x := o[len(o)-1]
	*h = o[:len(o)-1]
	return x
}

// simQueue runs c slots for horizon service times (S = 1) with
// interactive arrivals at load × c per S and, when allow is not nil, a
// batch whose lines start while allow(c, interactive in service, lines in
// service) and no interactive request waits. Latency is wait + S.
func simQueue(c int, load float64, horizon float64, allow func(c, inter, lines int) bool) simResult {
	rate := load * float64(c)
	rng := rand.New(rand.NewPCG(24, uint64(c))) // the same arrivals for every policy
	ev := &simEvents{{t: rng.ExpFloat64() / rate, kind: simArrival}}
	var (
		waiting         []float64 // arrival times
		inter, lines    int
		lat             []float64
		busyI, busyLine float64
	)
	held := func(now float64) float64 { return min(now+1, horizon) - now }
	for ev.Len() > 0 {
		e := heap.Pop(ev).(simEvent)
		if e.t > horizon {
			break
		}
		switch e.kind {
		case simArrival:
			waiting = append(waiting, e.t)
			heap.Push(ev, simEvent{t: e.t + rng.ExpFloat64()/rate, kind: simArrival})
		case simInteractiveEnd:
			inter--
		case simLineEnd:
			lines--
		}
		for len(waiting) > 0 && inter+lines < c {
			lat = append(lat, e.t-waiting[0]+1)
			waiting = waiting[1:]
			inter++
			busyI += held(e.t)
			heap.Push(ev, simEvent{t: e.t + 1, kind: simInteractiveEnd})
		}
		for allow != nil && len(waiting) == 0 && inter+lines < c && allow(c, inter, lines) {
			lines++
			busyLine += held(e.t)
			heap.Push(ev, simEvent{t: e.t + 1, kind: simLineEnd})
		}
	}
	slices.Sort(lat)
	waited := len(lat) - sort.SearchFloat64s(lat, math.Nextafter(1, 2))
	return simResult{p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], used: busyLine / (float64(c)*horizon - busyI),
		waited: float64(waited) / float64(len(lat))}
}
