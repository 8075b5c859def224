// Package llamaref drives the llama.cpp reference tool (tools/llamaref) from
// tests and benchmarks: quantizing model files, greedy decoding with per-step
// logits, mean-pooled embeddings, and timing prefill and decode.
//
// The prebuilt llama.cpp ships one CPU backend per CPU generation, each
// summing in its own order. Every call here runs on the variant whose order
// the engine reproduces (Pinned) unless it names another: Bench and the
// *On functions with Native measure llama.cpp as ggml itself would run it.
//
// The reference is prepared by `make llamaref` (tools/llamaref/setup.sh).
// When it is missing, tests skip under plain `go test` and fail under
// `make test` (LLMCTL_TEST_REQUIRE_SERVICES=1), like the other test services.
package llamaref

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/serve/engine/quant"
)

// CPU names a CPU backend variant of the prebuilt reference (the NAME of
// its libggml-cpu-NAME.so), or Native for ggml's own best choice.
type CPU string

// Native lets ggml load the best CPU backend this machine runs.
const Native CPU = "native"

// haswell is the AVX2+FMA+F16C variant: the kernels the engine's assembly
// follows operation for operation.
const haswell CPU = "haswell"

// Pinned returns the variant whose summation order the engine reproduces
// on this CPU, and whether there is one: the AVX2 build when the engine
// runs its AVX2 kernels. Without them (no AVX2, or LLMCTL_ENGINE_NOASM=1)
// no variant sums as the portable Go kernels do, and it returns Native,
// false.
func Pinned() (CPU, bool) {
	if quant.UsesAVX2() {
		return haswell, true
	}
	return Native, false
}

// Features lists the CPU features of the backend cpu loads ("AVX2=1,...").
func Features(tb testing.TB, cpu CPU) string {
	tb.Helper()
	return strings.TrimSpace(string(runOn(tb, cpu, "cpu")))
}

// Dir returns the prepared reference directory or skips/fails t.
func Dir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("LLMCTL_LLAMAREF_DIR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err == nil {
			dir = filepath.Join(cache, "llmctl", "llamaref")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "llamaref")); err != nil {
		testenv.Unavailable(tb, "llama.cpp reference not prepared in %q (run `make llamaref`): %v", dir, err)
	}
	return dir
}

// VocabDir is where llama.cpp's ggml-vocab-*.gguf test files are.
func VocabDir(tb testing.TB) string {
	return filepath.Join(Dir(tb), "llama.cpp", "models")
}

// run runs the reference on the pinned variant.
func run(tb testing.TB, args ...string) []byte {
	tb.Helper()
	cpu, _ := Pinned()
	return runOn(tb, cpu, args...)
}

func runOn(tb testing.TB, cpu CPU, args ...string) []byte {
	tb.Helper()
	dir := Dir(tb)
	cmd := exec.Command(filepath.Join(dir, "llamaref"), args...)
	cmd.Env = append(os.Environ(), "LLAMAREF_LIBDIR="+filepath.Join(dir, "bin"), "LLAMAREF_CPU="+string(cpu))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("llamaref %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// Quantize writes in quantized to ftype (q8_0, q4_0, q4_k_m, f16) as out.
func Quantize(tb testing.TB, in, out, ftype string) {
	tb.Helper()
	run(tb, "quantize", in, out, ftype)
}

// Greedy decodes n tokens greedily after prompt on the pinned variant and
// returns the chosen tokens and the logits of every step.
func Greedy(tb testing.TB, model string, n int, prompt []int32) ([]int32, [][]float32) {
	tb.Helper()
	cpu, _ := Pinned()
	return GreedyOn(tb, cpu, model, n, prompt)
}

// GreedyOn is Greedy on the CPU variant cpu.
func GreedyOn(tb testing.TB, cpu CPU, model string, n int, prompt []int32) ([]int32, [][]float32) {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "greedy.bin")
	args := []string{"greedy", model, strconv.Itoa(n), out}
	for _, t := range prompt {
		args = append(args, strconv.Itoa(int(t)))
	}
	runOn(tb, cpu, args...)
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	nv := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	if len(b) != n*(4+4*nv) {
		tb.Fatalf("llamaref greedy: %d bytes for %d steps of %d logits", len(b), n, nv)
	}
	toks := make([]int32, n)
	logits := make([][]float32, n)
	for s := range n {
		toks[s] = int32(binary.LittleEndian.Uint32(b))
		l := make([]float32, nv)
		for i := range l {
			l[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4+4*i:]))
		}
		logits[s] = l
		b = b[4+4*nv:]
	}
	return toks, logits
}

// Embed returns llama.cpp's mean-pooled embedding of tokens (one batch,
// LLAMA_POOLING_TYPE_MEAN), as llama_get_embeddings_seq gives it: not
// normalized.
func Embed(tb testing.TB, model string, tokens []int32) []float32 {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "embed.bin")
	args := []string{"embed", model, out}
	for _, t := range tokens {
		args = append(args, strconv.Itoa(int(t)))
	}
	run(tb, args...)
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	if len(b) < 4 {
		tb.Fatalf("llamaref embed: %d bytes", len(b))
	}
	n := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	if len(b) != 4*n {
		tb.Fatalf("llamaref embed: %d bytes for %d values", len(b), n)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// Speed is a throughput measurement in tokens per second, by wall clock and
// by process CPU time.
type Speed struct {
	PrefillTPS, DecodeTPS       float64
	PrefillCPUTPS, DecodeCPUTPS float64
}

// Bench times llama.cpp on model: a prompt of nPrompt tokens, then nGen
// greedy decode steps, on threads threads, on its native (fastest) variant.
func Bench(tb testing.TB, model string, nPrompt, nGen, threads int) Speed {
	tb.Helper()
	out := runOn(tb, Native, "bench", model, strconv.Itoa(nPrompt), strconv.Itoa(nGen), strconv.Itoa(threads))
	var s Speed
	if _, err := fmt.Sscan(string(out), &s.PrefillTPS, &s.DecodeTPS, &s.PrefillCPUTPS, &s.DecodeCPUTPS); err != nil {
		tb.Fatalf("llamaref bench output %q: %v", out, err)
	}
	return s
}
