package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// maxSamples bounds the samples kept per target: enough for a check every
// 15 minutes over a day, plus slack.
const maxSamples = 200

// state is the file of earlier samples that later windows start from.
type state struct {
	Samples []Sample `json:"samples"`
}

// LoadState reads the samples of path; a missing file is no samples.
func LoadState(path string) ([]Sample, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reconcile state %s: not a state file written by llmctl (%v); move it away to start over", path, err)
	}
	return s.Samples, nil
}

// SaveState writes history plus current to path, keeping the newest
// maxSamples per target (and none older than keep), atomically.
func SaveState(path string, history, current []Sample, keep time.Duration, now time.Time) error {
	all := append(slices.Clone(history), current...)
	slices.SortFunc(all, func(a, b Sample) int { return b.Time.Compare(a.Time) })
	per := map[string]int{}
	var s state
	for _, x := range all {
		if per[x.Target] >= maxSamples || (keep > 0 && now.Sub(x.Time) > keep) {
			continue
		}
		per[x.Target]++
		s.Samples = append(s.Samples, x)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return WriteAtomic(path, b)
}

// WriteAtomic replaces path with b through a temporary file and a rename,
// so a crash leaves the old file or the new one, never half of one.
func WriteAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".reconcile-*")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("state file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}
