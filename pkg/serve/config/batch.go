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
	// MaxFileBytes bounds an uploaded batch input file (a larger upload is
	// refused with 413); 0 means 100 MiB. File bytes live in the database.
	MaxFileBytes int64 `yaml:"maxFileBytes"`
	// MaxLineBytes bounds one input line; 0 means maxBodyBytes, the limit
	// the same request would meet sent directly.
	MaxLineBytes int64 `yaml:"maxLineBytes"`
	// MaxLines bounds the lines of one batch; 0 means 50,000 (OpenAI's).
	MaxLines int `yaml:"maxLines"`
}

// Validate names each wrong field of the batch section.
func (b Batch) Validate() error {
	var errs []error
	if b.LeaseTTL < 0 || b.LeaseRenew < 0 {
		errs = append(errs, errors.New("batch: leaseTTL and leaseRenew must not be negative"))
	}
	if b.MaxFileBytes < 0 || b.MaxLineBytes < 0 || b.MaxLines < 0 {
		errs = append(errs, errors.New("batch: maxFileBytes, maxLineBytes and maxLines must not be negative (0 takes the default)"))
	}
	if b.MaxFileBytes > 0 && b.MaxLineBytes > b.MaxFileBytes {
		errs = append(errs, fmt.Errorf("batch.maxLineBytes: %d is above batch.maxFileBytes (%d)", b.MaxLineBytes, b.MaxFileBytes))
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
