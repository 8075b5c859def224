package config

import (
	"errors"
	"fmt"
	"time"
)

// Batch tunes the Batches API's worker (docs/batches.md).
type Batch struct {
	// LeaseTTL is how long a replica's lease on a batch lasts past its
	// last renewal: a killed replica's batch is taken over by another
	// that long after; 0 means 30s.
	LeaseTTL time.Duration `yaml:"leaseTTL"`
	// LeaseRenew is how often the lease is renewed, shorter than
	// leaseTTL; 0 means a third of it.
	LeaseRenew time.Duration `yaml:"leaseRenew"`
}

// Validate names each wrong field of the batch section.
func (b Batch) Validate() error {
	var errs []error
	if b.LeaseTTL < 0 || b.LeaseRenew < 0 {
		errs = append(errs, errors.New("batch: leaseTTL and leaseRenew must not be negative"))
	}
	ttl := b.LeaseTTL
	if ttl == 0 {
		ttl = 30 * time.Second
	}
	if b.LeaseRenew >= ttl {
		errs = append(errs, fmt.Errorf("batch.leaseRenew: %s must be shorter than batch.leaseTTL (%s)", b.LeaseRenew, ttl))
	}
	return errors.Join(errs...)
}
