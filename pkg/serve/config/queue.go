package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Queue is the admission queue in front of backends at their
// maxConcurrency (docs/routing.md): how long and how many requests may
// wait, and who goes first.
type Queue struct {
	// Off answers a full backend with 503 at once, as without a queue.
	Off bool `yaml:"off"`
	// MaxWait is the longest a request waits for a slot before 429
	// capacity_exceeded; 0 means the default, 30s.
	MaxWait time.Duration `yaml:"maxWait"`
	// MaxDepth bounds the requests waiting per model; 0 means 256.
	MaxDepth int `yaml:"maxDepth"`
	// Priorities map a key id, tenant id or tenant name to high, normal
	// (the default) or low.
	Priorities map[string]string `yaml:"priorities"`
	// Weights are tenants' shares (by id or name) within a priority; 1 by default.
	Weights map[string]int `yaml:"weights"`
	// StarvationLimit bounds how many grants to higher priorities pass a
	// waiting request over before it is served in arrival order; 0 means 8.
	StarvationLimit int `yaml:"starvationLimit"`
	// FallbackOnQueue sends a request the queue refuses (full, or its wait
	// ran out) to the model's fallbacks instead of answering 429.
	FallbackOnQueue bool `yaml:"fallbackOnQueue"`
	// BatchShare caps the share of a model's backend slots that lines of
	// the Batches API may hold at once (above 0, at most 1); 0 means 0.5.
	BatchShare float64 `yaml:"batchShare"`
	// BatchHeadroom is how many of a model's slots a batch line must leave
	// free when it starts: auto (the default, sized from the interactive
	// load the queue observes) or a number of slots (0: none, only
	// batchShare limits batch lines).
	BatchHeadroom string `yaml:"batchHeadroom"`
}

// BatchHeadroomAuto is batchHeadroom's default.
const BatchHeadroomAuto = "auto"

// BatchHeadroomSlots is batchHeadroom as a number of slots; auto is true
// for auto (or unset). Call it on a validated section.
func (q Queue) BatchHeadroomSlots() (n int, auto bool) {
	if q.BatchHeadroom == "" || q.BatchHeadroom == BatchHeadroomAuto {
		return 0, true
	}
	n, _ = strconv.Atoi(q.BatchHeadroom)
	return n, false
}

// ValidateFallbacks names each wrong entry of the fallbacks section.
func ValidateFallbacks(f map[string][]string) error { return validateModelLists("fallbacks", f) }

// ValidateContextFallbacks names each wrong entry of the contextFallbacks section.
func ValidateContextFallbacks(f map[string][]string) error {
	return validateModelLists("contextFallbacks", f)
}

// validateModelLists checks a section mapping models to lists of others.
func validateModelLists(section string, f map[string][]string) error {
	var errs []error
	for _, model := range slices.Sorted(maps.Keys(f)) {
		for i, fb := range f[model] {
			switch {
			case strings.TrimSpace(fb) == "":
				errs = append(errs, fmt.Errorf("%s.%s[%d]: must name a model", section, model, i))
			case fb == model:
				errs = append(errs, fmt.Errorf("%s.%s[%d]: a model cannot be its own fallback", section, model, i))
			}
		}
	}
	return errors.Join(errs...)
}

// Validate names each wrong field of the queue section.
func (q Queue) Validate() error {
	var errs []error
	if q.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("queue.maxWait: %s must not be negative (queue.off: true turns the queue off)", q.MaxWait))
	}
	if q.MaxDepth < 0 || q.StarvationLimit < 0 {
		errs = append(errs, errors.New("queue: maxDepth and starvationLimit must not be negative"))
	}
	for _, k := range slices.Sorted(maps.Keys(q.Priorities)) {
		switch q.Priorities[k] {
		case "high", "normal", "low":
		default:
			errs = append(errs, fmt.Errorf("queue.priorities.%s: %q must be high, normal or low", k, q.Priorities[k]))
		}
	}
	if q.BatchShare < 0 || q.BatchShare > 1 {
		errs = append(errs, fmt.Errorf("queue.batchShare: %v must be above 0 and at most 1", q.BatchShare))
	}
	if h := q.BatchHeadroom; h != "" && h != BatchHeadroomAuto {
		if n, err := strconv.Atoi(h); err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("queue.batchHeadroom: %q must be auto or a number of slots, 0 or more", h))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(q.Weights)) {
		if q.Weights[k] <= 0 {
			errs = append(errs, fmt.Errorf("queue.weights.%s: %d must be positive", k, q.Weights[k]))
		}
	}
	return errors.Join(errs...)
}
