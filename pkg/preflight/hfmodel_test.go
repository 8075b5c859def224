package preflight

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stTensor is one tensor of a test safetensors file.
type stTensor struct {
	name  string
	dtype string
	shape []uint64
}

// encodeSafetensorsHeader is the 8-byte length and JSON header for ts, laid
// out back to back, and the data section's length.
func encodeSafetensorsHeader(t testing.TB, ts []stTensor) ([]byte, uint64) {
	t.Helper()
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var off uint64
	for _, x := range ts {
		n, err := stEntry{Dtype: x.dtype, Shape: x.shape}.bytes()
		if err != nil {
			t.Fatal(err)
		}
		hdr[x.name] = map[string]any{"dtype": x.dtype, "shape": x.shape, "data_offsets": []uint64{off, off + n}}
		off += n
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, uint64(len(js)))
	b.Write(js)
	return b.Bytes(), off
}

// writeSafetensors writes a file whose data section is sparse (a hole), so
// an 8B model costs no disk.
func writeSafetensors(t testing.TB, path string, ts []stTensor) {
	t.Helper()
	hdr, data := encodeSafetensorsHeader(t, ts)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(len(hdr)) + int64(data)); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// llama8BST is shaped like Llama 3.1 8B in BF16: 8,030,261,248 parameters.
func llama8BST(t testing.TB, dir string, maxPos int) {
	t.Helper()
	writeJSON(t, filepath.Join(dir, "config.json"), map[string]any{
		"model_type": "llama", "architectures": []string{"LlamaForCausalLM"}, "num_hidden_layers": 32,
		"num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096, "max_position_embeddings": maxPos, "torch_dtype": "bfloat16"})
	ts := []stTensor{{"model.embed_tokens.weight", "BF16", []uint64{128256, 4096}}, {"lm_head.weight", "BF16", []uint64{128256, 4096}}, {"model.norm.weight", "BF16", []uint64{4096}}}
	for l := range 32 {
		p := fmt.Sprintf("model.layers.%d.", l)
		ts = append(ts,
			stTensor{p + "self_attn.q_proj.weight", "BF16", []uint64{4096, 4096}}, stTensor{p + "self_attn.k_proj.weight", "BF16", []uint64{1024, 4096}},
			stTensor{p + "self_attn.v_proj.weight", "BF16", []uint64{1024, 4096}}, stTensor{p + "self_attn.o_proj.weight", "BF16", []uint64{4096, 4096}},
			stTensor{p + "mlp.gate_proj.weight", "BF16", []uint64{14336, 4096}}, stTensor{p + "mlp.up_proj.weight", "BF16", []uint64{14336, 4096}},
			stTensor{p + "mlp.down_proj.weight", "BF16", []uint64{4096, 14336}},
			stTensor{p + "input_layernorm.weight", "BF16", []uint64{4096}}, stTensor{p + "post_attention_layernorm.weight", "BF16", []uint64{4096}})
	}
	// Two shards and an index, as the Hub ships them.
	writeSafetensors(t, filepath.Join(dir, "model-00001-of-00002.safetensors"), ts[:150])
	writeSafetensors(t, filepath.Join(dir, "model-00002-of-00002.safetensors"), ts[150:])
	wm := map[string]string{}
	for i, x := range ts {
		wm[x.name] = map[bool]string{true: "model-00001-of-00002.safetensors", false: "model-00002-of-00002.safetensors"}[i < 150]
	}
	writeJSON(t, filepath.Join(dir, "model.safetensors.index.json"), map[string]any{"weight_map": wm})
}

// gpt2ST is GPT-2 small: n_positions 1024, FP32 checkpoint (vLLM loads it as FP16).
func gpt2ST(t testing.TB, dir string) {
	t.Helper()
	writeJSON(t, filepath.Join(dir, "config.json"), map[string]any{"model_type": "gpt2", "n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024})
	writeSafetensors(t, filepath.Join(dir, "model.safetensors"), []stTensor{
		{"wte.weight", "F32", []uint64{50257, 768}}, {"wpe.weight", "F32", []uint64{1024, 768}}, {"h.all", "F32", []uint64{12, 7087872}}})
}

// rtx4090 is a 24 GiB GPU with free bytes of VRAM.
func rtx4090(free uint64) GPUProbe { return gpuWithFree(free) }

func hfEnv(t *testing.T, probe GPUProbe, dir string, ctxLen int, util float64) *Env {
	return &Env{Root: t.TempDir(), GPU: probe, Model: dir, Context: ctxLen, GPUMemoryUtilization: util}
}

const llama8BParams = 8030261248

func TestReadHFModel(t *testing.T) {
	dir := t.TempDir()
	llama8BST(t, dir, 131072)
	// A consolidated copy beside the shards is not counted: the index rules.
	writeSafetensors(t, filepath.Join(dir, "consolidated.safetensors"), []stTensor{{"x", "BF16", []uint64{1 << 20}}})
	m, err := readHFModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Stored != 2*llama8BParams || m.Weights != m.Stored || m.Tensors != 3+32*9 || len(m.Files) != 2 {
		t.Errorf("stored %d weights %d tensors %d files %v", m.Stored, m.Weights, m.Tensors, m.Files)
	}
	if c := m.Config; c.Layers != 32 || c.KVHeads != 8 || c.HeadDim != 128 || c.MaxPositions != 131072 {
		t.Errorf("config %+v", c)
	}
	if m.kvBytesPerToken() != 32*8*128*2*2 {
		t.Errorf("kv/token %d", m.kvBytesPerToken())
	}
	g := t.TempDir()
	gpt2ST(t, g)
	m, err = readHFModel(filepath.Join(g, "model.safetensors")) // one file names its directory
	if err != nil {
		t.Fatal(err)
	}
	if m.Weights != m.Stored/2 || m.Config.Layers != 12 || m.Config.KVHeads != 12 || m.Config.HeadDim != 64 || m.Config.MaxPositions != 1024 {
		t.Errorf("gpt2: %+v", m)
	}
}

func TestHFModelFit(t *testing.T) {
	llama := t.TempDir()
	llama8BST(t, llama, 8192)
	llamaLong := t.TempDir()
	llama8BST(t, llamaLong, 131072)
	gpt2 := t.TempDir()
	gpt2ST(t, gpt2)
	all := func(r Result) string { return r.Message + "\n" + strings.Join(r.Evidence, "\n") + "\n" + r.Remedy }

	for _, tc := range []struct {
		name    string
		env     *Env
		verdict Verdict
		want    []string
	}{
		{"8B BF16 fits a 4090", hfEnv(t, rtx4090(23*gib), llama, 0, 0), Pass,
			[]string{"fits: ", "max-model-len 8192", "weights on disk 15.0 GiB (BF16 15.0 GiB)", "vLLM budget 21.6 GiB = --gpu-memory-utilization 0.90 × 24.0 GiB total",
				"KV cache for one sequence 1.0 GiB = 2 × 32 layers × 8 KV heads × 128 head dim × 8192 tokens × 2 bytes"}},
		{"budget above free VRAM", hfEnv(t, rtx4090(12*gib), llama, 0, 0), Fail,
			[]string{"only 12.0 GiB is free", "--gpu-memory-utilization 0.50 or less"}},
		{"trained 128k context does not fit", hfEnv(t, rtx4090(23*gib), llamaLong, 0, 0), Fail,
			[]string{"does not fit", "16.0 GiB KV cache at 131072 tokens", "lower --max-model-len: at most"}},
		{"--context within VRAM and training", hfEnv(t, rtx4090(23*gib), llamaLong, 16384, 0), Pass, []string{"max-model-len 16384"}},
		{"--context beyond the trained 1024", hfEnv(t, rtx4090(23*gib), gpt2, 100000, 0), Fail,
			[]string{"--context 100000 exceeds", "trained context 1024: vLLM refuses to start", "--context 1024 or less"}},
		{"small model fits", hfEnv(t, rtx4090(23*gib), gpt2, 0, 0), Pass, []string{"in VRAM 237.3 MiB"}},
		{"lower utilization leaves one sequence", hfEnv(t, rtx4090(23*gib), llama, 0, 0.78), Warn, []string{"room for about one full-length sequence"}},
		{"no GPU", hfEnv(t, StaticProbe(GPUSnapshot{Init: InitLibraryNotFound}), llama, 0, 0), Skip, []string{"no GPU to fit it against"}},
		{"not a model directory", hfEnv(t, rtx4090(23*gib), t.TempDir(), 0, 0), Fail, []string{"config.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runModelFit(t, tc.env)
			if r.Verdict != tc.verdict {
				t.Errorf("verdict %s, want %s:\n%s", r.Verdict, tc.verdict, all(r))
			}
			for _, w := range tc.want {
				if !strings.Contains(all(r), w) {
					t.Errorf("lacks %q:\n%s", w, all(r))
				}
			}
		})
	}
}

func TestReadSafetensorsRejects(t *testing.T) {
	good, data := encodeSafetensorsHeader(t, []stTensor{{"w", "F16", []uint64{2, 3}}})
	size := int64(len(good)) + int64(data)
	if st, err := readSafetensors(bytes.NewReader(good), size); err != nil || st.Bytes != 12 || st.Tensors != 1 {
		t.Fatalf("good header: %+v %v", st, err)
	}
	hdr := func(js string) []byte {
		var b bytes.Buffer
		_ = binary.Write(&b, binary.LittleEndian, uint64(len(js)))
		b.WriteString(js)
		return b.Bytes()
	}
	for name, tc := range map[string]struct {
		b    []byte
		size int64
		want string
	}{
		"short":            {[]byte{1, 2, 3}, 3, "header length"},
		"huge length":      {[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, -1, "outside"},
		"length past end":  {hdr(`{}`)[:9], 9, "runs past the end"},
		"not JSON object":  {hdr(`[1,2]`), -1, "not a JSON object"},
		"unknown dtype":    {hdr(`{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}}`), -1, `unknown dtype "Q4"`},
		"offsets mismatch": {hdr(`{"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,10]}}`), -1, "hold 10 bytes"},
		"reversed":         {hdr(`{"w":{"dtype":"U8","shape":[0],"data_offsets":[5,0]}}`), -1, "offsets [5, 0)"},
		"overflow":         {hdr(`{"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`), -1, "overflows"},
		"truncated data":   {good, size - 1, "truncated download"},
		"bad metadata":     {hdr(`{"__metadata__":{"a":1}}`), -1, "__metadata__"},
	} {
		if _, err := readSafetensors(bytes.NewReader(tc.b), tc.size); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	// Sub-byte dtypes round up to whole bytes.
	if n, _ := (stEntry{Dtype: "F4", Shape: []uint64{3}}).bytes(); n != 2 {
		t.Errorf("F4×3 = %d bytes", n)
	}
}

// FuzzReadSafetensors: any bytes give tensors or an error, never a panic or
// an allocation beyond the format's header bound; what parses is
// self-consistent and lies inside the input.
func FuzzReadSafetensors(f *testing.F) {
	good, _ := encodeSafetensorsHeader(f, []stTensor{{"a", "BF16", []uint64{4, 4}}, {"b", "F4", []uint64{3}}})
	f.Add(good)
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, '{', '}'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := readSafetensors(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		var sum uint64
		for _, n := range st.ByDtype {
			sum += n
		}
		if sum != st.Bytes || st.Bytes > uint64(len(data)) {
			t.Fatalf("bytes %d, by dtype %d, input %d", st.Bytes, sum, len(data))
		}
	})
}
