package serve

// Slotted is a backend that runs at most Slots requests at once and makes
// the others wait inside itself (the embedded engine's scheduler). The
// gateway caps such a backend at Slots, so that requests beyond them wait
// in the admission queue instead, in fair-share and priority order, bounded
// by queue.maxWait, rather than in the backend's own arrival order.
type Slotted interface {
	Slots() int
}

// slots is b's concurrency cap: its Slots when it has them, else 0 (none).
func slots(b Backend) int {
	if s, ok := b.(Slotted); ok {
		return max(s.Slots(), 0)
	}
	return 0
}
