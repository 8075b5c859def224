package preflight

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// vLLM's memory model, as far as model.fit needs it.
const (
	// DefaultGPUMemoryUtilization is vLLM's default --gpu-memory-utilization:
	// the fraction of the GPU's total memory vLLM claims for itself.
	DefaultGPUMemoryUtilization = 0.9
	// vllmOverheadFixed estimates what vLLM needs besides weights and KV
	// cache: the CUDA context and NCCL (non-torch memory), the activation
	// peak its profiling run measures at the default batch size, and CUDA
	// graphs. Rough, like overheadFixed; overheadPercent of the weights is
	// added on top.
	vllmOverheadFixed = 1536 << 20
)

// hfConfig is what model fit reads from a Hugging Face config.json. GPT-2
// era models name the same facts n_layer, n_head, n_embd, n_positions;
// multimodal ones keep the language model's under text_config.
type hfConfig struct {
	ModelType     string    `json:"model_type"`
	Architectures []string  `json:"architectures"`
	Layers        int       `json:"num_hidden_layers"`
	Heads         int       `json:"num_attention_heads"`
	KVHeads       int       `json:"num_key_value_heads"`
	Hidden        int       `json:"hidden_size"`
	HeadDim       int       `json:"head_dim"`
	MaxPositions  int       `json:"max_position_embeddings"`
	TorchDtype    string    `json:"torch_dtype"`
	NLayer        int       `json:"n_layer"`
	NHead         int       `json:"n_head"`
	NEmbd         int       `json:"n_embd"`
	NPositions    int       `json:"n_positions"`
	TextConfig    *hfConfig `json:"text_config"`
}

// normalize fills the standard fields from the older names and the
// text_config, and derives the KV heads and head dimension.
func (c hfConfig) normalize() hfConfig {
	if c.TextConfig != nil && c.Layers == 0 && c.NLayer == 0 {
		t := c.TextConfig.normalize()
		if t.TorchDtype == "" {
			t.TorchDtype = c.TorchDtype
		}
		if t.ModelType == "" {
			t.ModelType = c.ModelType
		}
		return t
	}
	pick := func(a, b int) int {
		if a != 0 {
			return a
		}
		return b
	}
	c.Layers, c.Heads = pick(c.Layers, c.NLayer), pick(c.Heads, c.NHead)
	c.Hidden, c.MaxPositions = pick(c.Hidden, c.NEmbd), pick(c.MaxPositions, c.NPositions)
	c.KVHeads = pick(c.KVHeads, c.Heads) // no GQA: one KV head per head
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	return c
}

// hfModel is a Hugging Face model directory as vLLM would load it.
type hfModel struct {
	Dir    string
	Config hfConfig
	Files  []string
	// Stored is the tensors' bytes on disk; Weights what they take in VRAM
	// under vLLM's --dtype auto, which loads FP32/FP64 checkpoints as 16-bit.
	Stored, Weights uint64
	Tensors         int
	ByDtype         map[string]uint64
}

// readHFModel reads config.json and every safetensors header of the model
// at path (its directory, or one .safetensors file in it). With an index
// (model.safetensors.index.json) only the files it maps are counted, so a
// repository that also ships a consolidated copy is not counted twice.
func readHFModel(path string) (hfModel, error) {
	m := hfModel{Dir: path, ByDtype: map[string]uint64{}}
	if !isDir(path) {
		m.Dir, m.Files = filepath.Dir(path), []string{path}
	}
	b, err := os.ReadFile(filepath.Join(m.Dir, "config.json"))
	if err != nil {
		return m, fmt.Errorf("a Hugging Face model needs its config.json: %w", err)
	}
	if err := json.Unmarshal(b, &m.Config); err != nil {
		return m, fmt.Errorf("%s: %w", filepath.Join(m.Dir, "config.json"), err)
	}
	m.Config = m.Config.normalize()
	if m.Files == nil {
		if m.Files, err = safetensorsFiles(m.Dir); err != nil {
			return m, err
		}
	}
	if len(m.Files) == 0 {
		return m, fmt.Errorf("no .safetensors files in %s (only safetensors checkpoints are sized, not .bin)", m.Dir)
	}
	for _, f := range m.Files {
		st, err := readSafetensorsFile(f)
		if err != nil {
			return m, err
		}
		m.Tensors += st.Tensors
		m.Stored += st.Bytes
		for dt, n := range st.ByDtype {
			m.ByDtype[dt] += n
			switch dt {
			case "F32":
				m.Weights += n / 2
			case "F64":
				m.Weights += n / 4
			default:
				m.Weights += n
			}
		}
	}
	return m, nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func safetensorsFiles(dir string) ([]string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json")); err == nil {
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("model.safetensors.index.json: %w", err)
		}
		seen := map[string]bool{}
		var out []string
		for _, f := range idx.WeightMap {
			if p := filepath.Join(dir, filepath.Base(f)); !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
		sort.Strings(out)
		return out, nil
	}
	return filepath.Glob(filepath.Join(dir, "*.safetensors"))
}

// kvBytesPerToken is the KV cache of one token across all layers at vLLM's
// default --kv-cache-dtype auto (16-bit): a K and a V vector per KV head.
func (m hfModel) kvBytesPerToken() uint64 {
	c := m.Config
	return uint64(c.Layers) * uint64(c.KVHeads) * uint64(c.HeadDim) * 2 * 2
}

// checkHFModelFit sizes a safetensors model for vLLM on the roomiest GPU.
// vLLM claims gpu-memory-utilization × the GPU's total memory at start
// (and refuses when that is more than is free), loads the weights, keeps
// its overhead, and turns the rest into KV cache, which must hold at least
// one sequence of max-model-len tokens. max-model-len defaults to the
// model's trained context, and vLLM refuses a longer one.
func checkHFModelFit(ctx context.Context, e *Env) Outcome {
	m, err := readHFModel(e.Model)
	if err != nil {
		return fail("cannot read the Hugging Face model", "pass a model directory with config.json and *.safetensors (as `huggingface-cli download` leaves it), or a GGUF file", err.Error())
	}
	c := m.Config
	name := filepath.Base(filepath.Clean(m.Dir))
	ev := []string{
		evf("%s: %s, %d layers, %d heads, %d KV heads × %d head dim, trained context %d, %d tensors in %d file(s)",
			name, strings.Join(append([]string{c.ModelType}, c.Architectures...), " "), c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.MaxPositions, m.Tensors, len(m.Files)),
		evf("weights on disk %s (%s); in VRAM %s", bytesString(m.Stored), dtypeSplit(m.ByDtype), bytesString(m.Weights)),
	}
	if c.Layers == 0 || c.KVHeads == 0 || c.HeadDim == 0 {
		return warn(name+": config.json lacks the attention shape, cannot size the KV cache", "", ev...)
	}
	util := e.GPUMemoryUtilization
	if util == 0 {
		util = DefaultGPUMemoryUtilization
	}
	maxLen, lenNote := uint64(e.Context), "--context (vLLM --max-model-len)"
	if maxLen == 0 {
		maxLen, lenNote = uint64(c.MaxPositions), "the model's trained context, vLLM's default --max-model-len"
	}
	var tooLong *Outcome
	if c.MaxPositions > 0 && e.Context > c.MaxPositions {
		o := fail(fmt.Sprintf("--context %d exceeds %s's trained context %d: vLLM refuses to start", e.Context, name, c.MaxPositions),
			fmt.Sprintf("use --context %d or less (vLLM accepts more only with VLLM_ALLOW_LONG_MAX_MODEL_LEN=1, and output degrades past the trained length unless the model has RoPE scaling)", c.MaxPositions), ev...)
		tooLong = &o
	}

	s := e.gpu(ctx)
	var dev *GPUDevice
	for i, d := range s.Devices {
		if d.Memory.OK && (dev == nil || d.Memory.Value.Free > dev.Memory.Value.Free) {
			dev = &s.Devices[i]
		}
	}
	if e.CPU || s.Init != InitOK || dev == nil {
		ev = append(ev, "vLLM serves on a GPU; no VRAM reading here ("+string(s.Init)+")")
		if tooLong != nil {
			return *tooLong
		}
		return skip(fmt.Sprintf("%s: %s of weights; no GPU to fit it against", name, bytesString(m.Weights)), ev...)
	}
	total, free := dev.Memory.Value.Total, dev.Memory.Value.Free
	budget := uint64(util * float64(total))
	overhead := uint64(vllmOverheadFixed) + m.Weights*overheadPercent/100
	kvPerTok := m.kvBytesPerToken()
	kvNeed := kvPerTok * maxLen
	target := fmt.Sprintf("GPU %d (%s)", dev.Index, dev.Name)
	ev = append(ev,
		evf("vLLM budget %s = --gpu-memory-utilization %.2f × %s total; %s free", bytesString(budget), util, bytesString(total), bytesString(free)),
		evf("overhead %s (CUDA context, activations, CUDA graphs: 1.5 GiB + %d%% of weights)", bytesString(overhead), overheadPercent),
		evf("KV cache for one sequence %s = 2 × %d layers × %d KV heads × %d head dim × %d tokens × 2 bytes (max-model-len: %s)",
			bytesString(kvNeed), c.Layers, c.KVHeads, c.HeadDim, maxLen, lenNote))
	out := pass("", ev...)
	room := int64(budget) - int64(m.Weights+overhead)
	switch {
	case budget > free:
		maxUtil := float64(free) / float64(total)
		out = fail(fmt.Sprintf("vLLM would claim %s (%.2f of %s) but only %s is free on %s: it refuses to start",
			bytesString(budget), util, bytesString(total), bytesString(free), target),
			fmt.Sprintf("free the GPU (`nvidia-smi` lists its processes), or pass --gpu-memory-utilization %.2f or less (to doctor and vLLM)", floor2(maxUtil)), ev...)
	case room <= 0 || uint64(room) < kvNeed:
		rem := "use a smaller or quantized model (AWQ/GPTQ/FP8), or a GPU with more memory"
		if room > 0 && uint64(room)/kvPerTok >= 256 {
			rem = fmt.Sprintf("lower --max-model-len: at most %d tokens fit (doctor --context %d); or raise --gpu-memory-utilization; or %s", uint64(room)/kvPerTok, uint64(room)/kvPerTok, rem)
		}
		out = fail(fmt.Sprintf("does not fit: %s needs %s of weights + %s overhead + %s KV cache at %d tokens; vLLM has %s on %s",
			name, bytesString(m.Weights), bytesString(overhead), bytesString(kvNeed), maxLen, bytesString(budget), target), rem, ev...)
	default:
		tokens := uint64(room) / kvPerTok
		out.Message = fmt.Sprintf("fits: %s at max-model-len %d on %s; KV cache holds %d tokens (%.1f full-length sequences)",
			name, maxLen, target, tokens, float64(tokens)/float64(maxLen))
		if tokens < 2*maxLen {
			out.Verdict = Warn
			out.Remedy = "room for about one full-length sequence: concurrent requests queue; lower --max-model-len to serve more at once"
		}
	}
	if tooLong != nil {
		tooLong.Evidence = out.Evidence
		return *tooLong
	}
	return out
}

func floor2(x float64) float64 { return float64(int(x*100)) / 100 }

func dtypeSplit(by map[string]uint64) string {
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+" "+bytesString(by[k]))
	}
	return strings.Join(parts, ", ")
}
