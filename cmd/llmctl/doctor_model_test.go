package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tinyGPT2 writes a Hugging Face directory: GPT-2's config (1024-token
// context) and one small FP32 tensor, as `huggingface-cli download` would.
func tinyGPT2(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg := `{"model_type":"gpt2","n_layer":12,"n_head":12,"n_embd":768,"n_positions":1024}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	hdr := `{"wpe.weight":{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}}`
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	b = append(append(b, hdr...), make([]byte, 64)...)
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDoctorSafetensorsContext: --context 100000 on a 1024-context model
// fails the fit (vLLM would refuse it), where it used to pass.
func TestDoctorSafetensorsContext(t *testing.T) {
	dir := tinyGPT2(t)
	out, err := runDoctor(t, "", "--only", "model", "--model", dir, "--context", "100000", "-o", "json")
	if exitCode(err) != 1 || !strings.Contains(out, "exceeds") || !strings.Contains(out, "trained context 1024") {
		t.Errorf("exit %d, out:\n%s", exitCode(err), out)
	}
	out, err = runDoctor(t, "", "--only", "model", "--model", dir, "-o", "json")
	if exitCode(err) != 0 || !strings.Contains(out, `"verdict": "pass"`) || !strings.Contains(out, "max-model-len 1024") {
		t.Errorf("exit %d, out:\n%s", exitCode(err), out)
	}
	if _, err := runDoctor(t, "", "--only", "model", "--model", dir, "--gpu-memory-utilization", "1.5"); err == nil || !strings.Contains(err.Error(), "--gpu-memory-utilization 1.5") {
		t.Errorf("utilization 1.5 accepted: %v", err)
	}
}
