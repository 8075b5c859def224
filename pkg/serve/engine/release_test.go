package engine

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/quant"
)

// q4Demo is the demo model with its matrices replaced by seeded random
// Q4_0 blocks and its output matrix dropped (so the output is tied to a
// Q4_0 token_embd): every matrix is repacked at load, token_embd too, whose
// rows are still read for the embedding.
func q4Demo(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteDemo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var w gguf.Writer
	for _, kv := range f.KV {
		w.CopyKV(kv)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if ti.Name == "output.weight" {
			continue
		}
		typ, data := ti.Type, f.Data(ti)
		if len(ti.Dims) == 2 && ti.Dims[0]%quant.QK4_0 == 0 {
			typ = gguf.Q4_0
			data = make([]byte, int(ti.Elements())/quant.QK4_0*18)
			for b := 0; b < len(data); b += 18 {
				binary.LittleEndian.PutUint16(data[b:], 0x2000) // scale 2^-7
				for j := 2; j < 18; j++ {
					data[b+j] = byte(rng.Uint32())
				}
			}
		}
		if err := w.AddTensor(ti.Name, typ, ti.Dims, data); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if _, err := w.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestRepackedTensorsReleased: Open gives back the file bytes of the
// matrices the model repacked, and the model answers exactly as one that
// keeps every byte; token_embd, repacked as the tied output but still read
// for the embedding, is kept.
func TestRepackedTensorsReleased(t *testing.T) {
	if !quant.HasPackedQ4_0() {
		t.Skip("no packed Q4_0 kernels on this CPU (they need AVX2): nothing is repacked")
	}
	file := q4Demo(t)
	path := filepath.Join(t.TempDir(), "q4.gguf")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	released := openT(t, path)
	rep := released.m.Repacked()
	if !slices.Contains(rep, "blk.0.attn_q.weight") || !slices.Contains(rep, "blk.0.ffn_down.weight") || slices.Contains(rep, "token_embd.weight") {
		t.Fatalf("repacked = %v; want the block matrices and not token_embd", rep)
	}
	f, err := gguf.Parse(file)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := newBackend(f, func() error { return nil }, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = whole.Close() })
	for _, prompt := range []string{"And God said", "the sea"} {
		want, err := complete(whole, prompt)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := complete(released, prompt); err != nil || got != want {
			t.Errorf("%q: released model answered %q, %v; the whole file's %q", prompt, got, err, want)
		}
	}
}
