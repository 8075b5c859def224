package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkSyncModes is one 300-byte record written and made durable, four
// ways, interleaved in rounds in the same run so that a shared disk's drift
// hits all alike (issue 23): fsync and fdatasync on a file that grows with
// each append (the spool's way), fdatasync on a segment preallocated with
// fallocate (unwritten extents: the first write to each block still changes
// metadata), and fdatasync on a segment preallocated by writing zeros (only
// data changes, as PostgreSQL does for its WAL). It ignores b.N.
//
//	go test -run '^$' -bench SyncModes -benchtime 1x ./pkg/billing/ledger/spool
func BenchmarkSyncModes(b *testing.B) {
	const (
		segSize        = 8 << 20
		rounds, perRnd = 20, 100
	)
	rec := make([]byte, 300)
	for i := range rec {
		rec[i] = byte(i)
	}
	type mode struct {
		name     string
		prealloc func(*os.File) error
		sync     func(*os.File) error
		f        *os.File
		off      int64
		lat      []time.Duration
	}
	modes := []*mode{
		{name: "append + fsync (today)", sync: (*os.File).Sync},
		{name: "append + fdatasync", sync: fdatasync},
		{name: "fallocate + fdatasync", prealloc: func(f *os.File) error { return unix.Fallocate(int(f.Fd()), 0, 0, segSize) }, sync: fdatasync},
		{name: "zero-filled + fdatasync", prealloc: zeroFill(segSize), sync: fdatasync},
	}
	dir := b.TempDir()
	for i, m := range modes {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(i)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if m.prealloc != nil {
			if err := m.prealloc(f); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		m.f = f
	}
	for range rounds {
		for _, m := range modes {
			for range perRnd {
				start := time.Now()
				if _, err := m.f.WriteAt(rec, m.off); err != nil {
					b.Fatal(err)
				}
				m.off += int64(len(rec))
				if err := m.sync(m.f); err != nil {
					b.Fatal(err)
				}
				m.lat = append(m.lat, time.Since(start))
			}
		}
	}
	fmt.Printf("\nspool sync modes: %d × %d-byte write + sync each, %d interleaved rounds\n", rounds*perRnd, len(rec), rounds)
	for _, m := range modes {
		slices.Sort(m.lat)
		n := len(m.lat)
		fmt.Printf("%-26s p50 %7.0f µs  p90 %7.0f µs  p99 %7.0f µs\n", m.name,
			float64(m.lat[n/2])/1e3, float64(m.lat[n*9/10])/1e3, float64(m.lat[n*99/100])/1e3)
	}
}

func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

func zeroFill(n int) func(*os.File) error {
	return func(f *os.File) error {
		_, err := f.WriteAt(make([]byte, n), 0)
		return err
	}
}
