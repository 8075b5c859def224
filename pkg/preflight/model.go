package preflight

import (
	"context"
	"fmt"
	"path/filepath"
)

// Model fit defaults.
const (
	// defaultMaxContext caps the context assumed when --context is not given:
	// many models train for 128k tokens, whose KV cache alone dwarfs a
	// consumer GPU, and no server allocates that by default.
	defaultMaxContext = 8192
	// overheadFixed is the CUDA context plus compute buffers of a runtime
	// such as llama.cpp or vLLM at small batch sizes, measured roughly; the
	// percentage covers per-layer scratch that grows with the model.
	overheadFixed   = 512 << 20
	overheadPercent = 5
	// tightPercent of the budget used counts as "fits, but barely".
	tightPercent = 90
)

func modelChecks() []Check {
	return []Check{{ID: "model.fit", Category: CatModel, Title: "Model fits in VRAM (or RAM)", Run: checkModelFit}}
}

// Fit is the arithmetic of model.fit, exported for `llmctl up` and tests.
type Fit struct {
	Weights, KVCache, Overhead, Need uint64
	Context                          uint64
	Budget                           uint64
	Target                           string // "GPU 0 (NVIDIA ...)" or "RAM"
}

func computeFit(m ggufModel, ctxLen uint64) Fit {
	f := Fit{Weights: m.WeightBytes, Context: ctxLen}
	f.KVCache = m.kvBytesPerToken() * ctxLen
	f.Overhead = overheadFixed + m.WeightBytes*overheadPercent/100
	f.Need = f.Weights + f.KVCache + f.Overhead
	return f
}

func checkModelFit(ctx context.Context, e *Env) Outcome {
	if e.Model == "" {
		return skip("no --model given")
	}
	if isSafetensorsPath(e.Model) {
		return checkHFModelFit(ctx, e)
	}
	m, err := readGGUFFile(e.Model)
	if err != nil {
		return fail("cannot read the model's GGUF header", "pass a GGUF file (llama.cpp format) to --model", err.Error())
	}
	if m.Tensors == 0 {
		return warn(fmt.Sprintf("%s has no tensors (a vocab-only GGUF?): nothing to fit", filepath.Base(e.Model)),
			"pass the model file itself, not its tokenizer", evf("%s: %s, %d layers, 0 tensors", filepath.Base(e.Model), m.Arch, m.Layers))
	}
	if m.Layers == 0 || m.KVHeads == 0 || m.KeyLength == 0 {
		return warn(fmt.Sprintf("%s: missing attention metadata, cannot size the KV cache", m.Arch), "",
			evf("weights %s, layers %d, kv heads %d, head dim %d", bytesString(m.WeightBytes), m.Layers, m.KVHeads, m.KeyLength))
	}
	ctxLen := uint64(e.Context)
	ctxNote := "from --context"
	if ctxLen == 0 {
		ctxLen, ctxNote = m.ContextLen, "the model's training context"
		if ctxLen == 0 || ctxLen > defaultMaxContext {
			ctxLen, ctxNote = defaultMaxContext, fmt.Sprintf("default cap; model trained for %d, set --context", m.ContextLen)
		}
	}
	f := computeFit(m, ctxLen)

	var budget uint64
	target := "RAM (CPU engine)"
	s := e.gpu(ctx)
	if !e.CPU && s.Init == InitOK && len(s.Devices) > 0 {
		// Serve on the roomiest GPU: a single-GPU box is the case we care for.
		for _, d := range s.Devices {
			if d.Memory.OK && d.Memory.Value.Free > budget {
				budget, target = d.Memory.Value.Free, fmt.Sprintf("GPU %d (%s) free VRAM", d.Index, d.Name)
			}
		}
	}
	if budget == 0 {
		avail, err := e.meminfo("MemAvailable")
		if err != nil {
			return skip("no GPU memory reading and cannot read available RAM", err.Error())
		}
		budget, target = avail, "available RAM (CPU engine)"
	}
	f.Budget, f.Target = budget, target

	name := m.Name
	if name == "" {
		name = m.Arch
	}
	ev := []string{
		evf("%s: %s, %d layers, %d KV heads × %d head dim, %d tensors", filepath.Base(e.Model), m.Arch, m.Layers, m.KVHeads, m.KeyLength, m.Tensors),
		evf("weights %s", bytesString(f.Weights)),
		evf("KV cache %s = 2 × %d layers × %d kv heads × %d head dim × %d context × 2 bytes (context: %s)",
			bytesString(f.KVCache), m.Layers, m.KVHeads, m.KeyLength, ctxLen, ctxNote),
		evf("overhead %s (512 MiB runtime + %d%% of weights)", bytesString(f.Overhead), overheadPercent),
		evf("need %s, have %s in %s", bytesString(f.Need), bytesString(budget), target),
	}
	msg := fmt.Sprintf("%s needs %s at context %d, %s has %s", name, bytesString(f.Need), ctxLen, target, bytesString(budget))
	switch {
	case f.Need > budget:
		rem := "use a smaller quantization (e.g. Q4_K_M) or a smaller model"
		if room := int64(budget) - int64(f.Weights+f.Overhead); room > 0 {
			if maxCtx := uint64(room) / m.kvBytesPerToken(); maxCtx >= 512 {
				rem = fmt.Sprintf("lower the context: at most --context %d fits; or %s", maxCtx, rem)
			}
		}
		if target != "available RAM (CPU engine)" {
			rem += "; or offload fewer layers to the GPU (llama.cpp -ngl) and serve the rest from RAM"
		}
		return fail("does not fit: "+msg, rem, ev...)
	case f.Need*100 > budget*tightPercent && (m.ContextLen == 0 || uint64(e.Context) <= m.ContextLen):
		return warn("fits with under 10% headroom: "+msg,
			"leave headroom for fragmentation and other processes: lower --context or pick a smaller quantization", ev...)
	}
	if m.ContextLen > 0 && uint64(e.Context) > m.ContextLen {
		// It fits, but the model never saw positions this far: llama.cpp
		// runs it and the output degrades past the trained length.
		return warn(fmt.Sprintf("fits, but --context %d exceeds the model's trained context %d: %s", e.Context, m.ContextLen, msg),
			fmt.Sprintf("use --context %d or less, or a model trained (or RoPE-scaled) for longer contexts", m.ContextLen), ev...)
	}
	return pass("fits: "+msg, ev...)
}
