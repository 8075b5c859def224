//go:build cgo

package preflight_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/gpu/gonvml"
	"github.com/llmctl/llmctl/pkg/preflight"
)

// BenchmarkDoctorRun times a whole run (every check but the cluster's, over
// the healthy fixture with a mocked RTX 4090 and a model header) with the
// default concurrency, against the same run one check at a time measured in
// the same benchmark, and reports the ratio.
func BenchmarkDoctorRun(b *testing.B) {
	root := copyTreeInto(b, filepath.Join("testdata", "healthy-k3s"), b.TempDir())
	preflight.WriteTestGGUF(b, root)
	checks, _ := preflight.Select(preflight.All(), nil, []string{"cluster"})
	run := func(conc int) time.Duration {
		start := time.Now()
		for range b.N {
			env := &preflight.Env{Root: root, GPU: gonvml.New(rtx4090(b)), Model: filepath.Join(root, "model.gguf"), Statfs: fixedDisk}
			rep := preflight.Run(context.Background(), env, checks, preflight.RunOptions{Concurrency: conc})
			if rep.Summary.Fail != 0 {
				b.Fatalf("healthy fixture failed: %+v", rep.Summary)
			}
		}
		return time.Since(start)
	}
	b.ResetTimer()
	seq := run(1)
	par := run(0)
	b.ReportMetric(float64(seq.Microseconds())/float64(b.N), "µs/run-sequential")
	b.ReportMetric(float64(par.Microseconds())/float64(b.N), "µs/run-concurrent")
	b.ReportMetric(float64(seq)/float64(par), "x-faster-than-sequential")
}
