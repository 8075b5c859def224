package preflight

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ggufSpec describes a GGUF header to write: metadata and a tensor table
// whose dims make the weights as large as wanted while the file stays tiny.
type ggufSpec struct {
	Arch                   string
	Name                   string
	Layers, Heads, KVHeads uint32
	Embedding, ContextLen  uint32
	KeyLength              uint32 // 0: omit (head dim = embedding/heads)
	Tensors                []ggufTensor
	Vocab                  int // tokenizer strings to write (exercises array skipping)
	OmitArch               bool
}

type ggufTensor struct {
	Name string
	Dims []uint64
	Type uint32
}

// encodeGGUF writes spec as a GGUF v3 header.
func encodeGGUF(s ggufSpec) []byte {
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	str := func(x string) { le(uint64(len(x))); b.WriteString(x) }
	type kv struct {
		k string
		t uint32
		v any
	}
	var kvs []kv
	if !s.OmitArch {
		kvs = append(kvs, kv{"general.architecture", gString, s.Arch})
	}
	kvs = append(kvs,
		kv{"general.name", gString, s.Name},
		kv{"general.file_type", gUint32, uint32(15)},
		kv{s.Arch + ".block_count", gUint32, s.Layers},
		kv{s.Arch + ".context_length", gUint32, s.ContextLen},
		kv{s.Arch + ".embedding_length", gUint32, s.Embedding},
		kv{s.Arch + ".attention.head_count", gUint32, s.Heads},
		kv{s.Arch + ".attention.head_count_kv", gUint32, s.KVHeads},
		kv{s.Arch + ".rope.freq_base", gFloat32, float32(500000)},
		kv{"tokenizer.ggml.scores", gArray, []float32{0.5, 0.25}},
	)
	if s.KeyLength > 0 {
		kvs = append(kvs, kv{s.Arch + ".attention.key_length", gUint32, s.KeyLength}, kv{s.Arch + ".attention.value_length", gUint32, s.KeyLength})
	}
	if s.Vocab > 0 {
		toks := make([]string, s.Vocab)
		for i := range toks {
			toks[i] = "tok" + strings.Repeat("x", i%7)
		}
		kvs = append(kvs, kv{"tokenizer.ggml.tokens", gArray, toks})
	}
	b.WriteString("GGUF")
	le(uint32(3))
	le(uint64(len(s.Tensors)))
	le(uint64(len(kvs)))
	for _, e := range kvs {
		str(e.k)
		le(e.t)
		switch v := e.v.(type) {
		case string:
			str(v)
		case []string:
			le(gString)
			le(uint64(len(v)))
			for _, x := range v {
				str(x)
			}
		case []float32:
			le(gFloat32)
			le(uint64(len(v)))
			le(v)
		default:
			le(v)
		}
	}
	for _, t := range s.Tensors {
		str(t.Name)
		le(uint32(len(t.Dims)))
		le(t.Dims)
		le(t.Type)
		le(uint64(0))
	}
	return b.Bytes()
}

// llama8B is shaped like Llama 3.1 8B at Q4_K: 32 layers, 32 heads, 8 KV
// heads, head dim 128; its weights are one Q4_K tensor of 2^32 elements
// (2.25 GiB) plus an f16 embedding (1 GiB).
func llama8B() ggufSpec {
	return ggufSpec{
		Arch: "llama", Name: "Test-Llama-8B", Layers: 32, Heads: 32, KVHeads: 8, Embedding: 4096, ContextLen: 131072,
		Tensors: []ggufTensor{
			{Name: "blk.all.weight", Dims: []uint64{4096, 1 << 20}, Type: 12},  // Q4_K: 144 bytes / 256
			{Name: "token_embd.weight", Dims: []uint64{4096, 131072}, Type: 1}, // F16
		},
		Vocab: 1000,
	}
}

func writeGGUF(t testing.TB, dir string, s ggufSpec) string {
	t.Helper()
	p := filepath.Join(dir, "model.gguf")
	if err := os.WriteFile(p, encodeGGUF(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadGGUF(t *testing.T) {
	m, err := readGGUF(bytes.NewReader(encodeGGUF(llama8B())))
	if err != nil {
		t.Fatal(err)
	}
	wantWeights := uint64(4096*(1<<20))/256*144 + 4096*131072*2
	if m.WeightBytes != wantWeights {
		t.Errorf("weights = %d, want %d", m.WeightBytes, wantWeights)
	}
	if m.Arch != "llama" || m.Name != "Test-Llama-8B" || m.Layers != 32 || m.KVHeads != 8 || m.ContextLen != 131072 || m.FileType != 15 {
		t.Errorf("metadata = %+v", m)
	}
	if m.KeyLength != 128 || m.ValueLength != 128 {
		t.Errorf("head dim = %d/%d, want 128 (embedding/heads)", m.KeyLength, m.ValueLength)
	}
	// 2 (K and V) × 32 layers × 8 kv heads × 128 × 2 bytes = 128 KiB per token.
	if got := m.kvBytesPerToken(); got != 2*32*8*128*2 {
		t.Errorf("kv bytes per token = %d", got)
	}
}

func TestReadGGUFExplicitHeadDim(t *testing.T) {
	s := llama8B()
	s.KeyLength = 256 // e.g. Gemma: head dim is not embedding/heads
	m, err := readGGUF(bytes.NewReader(encodeGGUF(s)))
	if err != nil {
		t.Fatal(err)
	}
	if m.KeyLength != 256 || m.kvBytesPerToken() != 2*32*8*256*2 {
		t.Errorf("key length %d, per token %d", m.KeyLength, m.kvBytesPerToken())
	}
}

func TestReadGGUFRejects(t *testing.T) {
	valid := encodeGGUF(llama8B())
	noArch := llama8B()
	noArch.OmitArch = true
	badType := llama8B()
	badType.Tensors[0].Type = 200
	huge := append([]byte("GGUF\x03\x00\x00\x00"), bytes.Repeat([]byte{0xff}, 16)...)
	bigDims := llama8B()
	bigDims.Tensors[0].Dims = []uint64{math.MaxUint64, 4}
	cases := map[string]struct {
		data []byte
		want string
	}{
		"empty":         {nil, "truncated"},
		"not gguf":      {[]byte("PK\x03\x04 a zip file"), "not a GGUF"},
		"version 1":     {append([]byte("GGUF\x01\x00\x00\x00"), valid[8:]...), "version 1"},
		"truncated":     {valid[:len(valid)/2], "truncated"},
		"no arch":       {encodeGGUF(noArch), "general.architecture"},
		"bad type":      {encodeGGUF(badType), "unknown ggml type 200"},
		"huge counts":   {huge, "implausible"},
		"overflow dims": {encodeGGUF(bigDims), "overflow"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := readGGUF(bytes.NewReader(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
	if _, err := readGGUF(bytes.NewReader([]byte("nope"))); !errors.Is(err, errNotGGUF) {
		t.Errorf("bad magic: err = %v, want errNotGGUF", err)
	}
}

// FuzzReadGGUF: any bytes give a model or an error, never a panic or a
// runaway allocation, and a parsed model always names its architecture.
func FuzzReadGGUF(f *testing.F) {
	f.Add(encodeGGUF(llama8B()))
	small := llama8B()
	small.Vocab = 3
	f.Add(encodeGGUF(small))
	f.Add([]byte("GGUF\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("GGUF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := readGGUF(bytes.NewReader(data))
		if err == nil && m.Arch == "" {
			t.Fatal("parsed a model without an architecture")
		}
	})
}
