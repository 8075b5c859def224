package preflight

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustRead(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// gpuWithFree is a snapshot of one GPU with free bytes of VRAM.
func gpuWithFree(free uint64) GPUProbe {
	return StaticProbe(GPUSnapshot{Init: InitOK, DriverVersion: "550.54.15", CUDADriverVersion: 12040,
		Devices: []GPUDevice{{Index: 0, Name: "NVIDIA GeForce RTX 4090", Memory: Val(GPUMemory{Total: 24 * gib, Free: free})}}})
}

func fitEnv(t *testing.T, probe GPUProbe, ctxLen int, cpu bool) *Env {
	root := t.TempDir()
	writeGGUF(t, root, llama8B())
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "proc/meminfo"), []byte("MemTotal: 33554432 kB\nMemAvailable: 16777216 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &Env{Root: root, GPU: probe, Model: filepath.Join(root, "model.gguf"), Context: ctxLen, CPU: cpu}
}

func runModelFit(t *testing.T, e *Env) Result {
	t.Helper()
	checks, _ := Select(All(), []string{"model.fit"}, nil)
	return Run(context.Background(), e, checks, RunOptions{}).Results[0]
}

func TestModelFit(t *testing.T) {
	m, _ := readGGUFFile(writeGGUF(t, t.TempDir(), llama8B()))
	perTok := uint64(2 * 32 * 8 * 128 * 2)
	overhead := uint64(512<<20) + m.WeightBytes*5/100

	t.Run("fits in VRAM", func(t *testing.T) {
		r := runModelFit(t, fitEnv(t, gpuWithFree(20*gib), 8192, false))
		need := m.WeightBytes + perTok*8192 + overhead
		if r.Verdict != Pass || !strings.Contains(r.Message, bytesString(need)) || !strings.Contains(r.Message, "GPU 0") {
			t.Errorf("%s: %s (need %s)", r.Verdict, r.Message, bytesString(need))
		}
	})
	t.Run("full context does not fit", func(t *testing.T) {
		r := runModelFit(t, fitEnv(t, gpuWithFree(16*gib), 131072, false))
		maxCtx := (16*gib - m.WeightBytes - overhead) / perTok
		if r.Verdict != Fail || !strings.Contains(r.Remedy, fmt.Sprintf("--context %d", maxCtx)) {
			t.Errorf("%s: %s / %s (want --context %d)", r.Verdict, r.Message, r.Remedy, maxCtx)
		}
		if !strings.Contains(strings.Join(r.Evidence, "\n"), "KV cache 16.0 GiB = 2 × 32 layers × 8 kv heads × 128 head dim × 131072 context") {
			t.Errorf("evidence: %v", r.Evidence)
		}
	})
	t.Run("barely fits warns", func(t *testing.T) {
		need := m.WeightBytes + perTok*8192 + overhead
		r := runModelFit(t, fitEnv(t, gpuWithFree(need+need/20), 8192, false))
		if r.Verdict != Warn {
			t.Errorf("%s: %s", r.Verdict, r.Message)
		}
	})
	t.Run("CPU engine uses RAM", func(t *testing.T) {
		r := runModelFit(t, fitEnv(t, gpuWithFree(1*gib), 4096, true))
		if r.Verdict != Pass || !strings.Contains(r.Message, "RAM") {
			t.Errorf("%s: %s", r.Verdict, r.Message)
		}
	})
	t.Run("default context is capped", func(t *testing.T) {
		r := runModelFit(t, fitEnv(t, gpuWithFree(20*gib), 0, false))
		if !strings.Contains(strings.Join(r.Evidence, "\n"), "model trained for 131072, set --context") {
			t.Errorf("evidence: %v", r.Evidence)
		}
	})
	t.Run("context beyond the trained one warns", func(t *testing.T) {
		e := fitEnv(t, gpuWithFree(20*gib), 4096, false)
		s := llama8B()
		s.ContextLen = 1024
		writeGGUF(t, e.Root, s)
		if r := runModelFit(t, e); r.Verdict != Warn || !strings.Contains(r.Message, "exceeds the model's trained context 1024") || !strings.Contains(r.Remedy, "--context 1024") {
			t.Errorf("%s: %s / %s", r.Verdict, r.Message, r.Remedy)
		}
	})
	t.Run("vocab-only file", func(t *testing.T) {
		e := fitEnv(t, gpuWithFree(20*gib), 0, false)
		s := llama8B()
		s.Tensors = nil
		writeGGUF(t, e.Root, s)
		if r := runModelFit(t, e); r.Verdict != Warn || !strings.Contains(r.Message, "no tensors") {
			t.Errorf("%s: %s", r.Verdict, r.Message)
		}
	})
	t.Run("not a GGUF file", func(t *testing.T) {
		e := fitEnv(t, gpuWithFree(20*gib), 0, false)
		if err := os.WriteFile(filepath.Join(e.Root, "model.gguf"), []byte("<html>404</html>"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runModelFit(t, e)
		if r.Verdict != Fail || !strings.Contains(strings.Join(r.Evidence, ""), "not a GGUF") {
			t.Errorf("%s: %s %v", r.Verdict, r.Message, r.Evidence)
		}
	})
}
