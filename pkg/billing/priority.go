package billing

import "fmt"

// The priorities of a key in the admission queue (docs/routing.md): strict
// between each other, with an anti-starvation bound.
const (
	PriorityHigh   = "high"
	PriorityNormal = "normal"
	PriorityLow    = "low"
)

// CheckPriority accepts high, normal, low, and "" (not set).
func CheckPriority(p string) error {
	switch p {
	case "", PriorityHigh, PriorityNormal, PriorityLow:
		return nil
	}
	return fmt.Errorf("priority %q: want high, normal or low", p)
}
