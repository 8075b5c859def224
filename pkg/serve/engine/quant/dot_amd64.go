package quant

import (
	"os"

	"golang.org/x/sys/cpu"
)

// useAVX2 selects the assembly kernels; fixed at start-up from CPUID.
// LLMCTL_ENGINE_NOASM=1 forces the portable Go kernels (for comparison).
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C && os.Getenv("LLMCTL_ENGINE_NOASM") != "1"

//go:noescape
func dotQ8_0AVX2(w, a *byte, nb int, rows int, tab *float32, out *float32)

//go:noescape
func dotQ4_0AVX2(w, a *byte, nb int, tab *float32) float32

//go:noescape
func dotQ6_KAVX2(w *byte, a *Q8K, nb int, rows int, tab *float32, out *float32)

//go:noescape
func dotQ4_KAVX2(w *byte, a *Q8K, nb int, rows int, tab *float32, out *float32)

//go:noescape
func dotQ4_KAVX2x4(w *byte, a0, a1, a2, a3 *Q8K, nb int, tab *float32, scratch *[16]float32, out *[4]float32)

//go:noescape
func dotQ4_KAVX2x4g(w *byte, a0, a1, a2, a3 *Q8K, nb int, tab *float32, scratch *[16]float32, out *[4]float32)

//go:noescape
func dotQ8_0AVX2x4(w, a0, a1, a2, a3 *byte, nb int, tab *float32, out *[4]float32)

//go:noescape
func dotQ4_0AVX2x4(w, a0, a1, a2, a3 *byte, nb int, tab *float32, out *[4]float32)

//go:noescape
func dotQ6_KAVX2x4(w *byte, a0, a1, a2, a3 *Q8K, nb int, tab *float32, scratch *[32]float32, out *[4]float32)

//go:noescape
func scoresF16AVX2(k *uint16, stride int, q *float32, hd int, n int, out *float32)

//go:noescape
func scoresF16VecAVX2(k *uint16, stride int, q *float32, hd int, n int, out *float32)

//go:noescape
func mixAccF16AVX2(acc *float32, v *uint16, stride int, p *float32, hd int, n int, lanes int)

//go:noescape
func expAVX2(dst, src *float32, s float32, neg int, n int, tab *[80]float32)

//go:noescape
func gemvQ4_0x8AVX2(w *byte, nb int, a *byte, acc *[8]float32)

//go:noescape
func gemmQ4_0x8AVX2(w *byte, nb int, a **byte, n int, acc *float32)

//go:noescape
func gemmQ4_Kx8AVX2(w *byte, nb int, a **Q8K, n int, acc *float32)

//go:noescape
func gemmQ4_Kx8TileAVX2(w *byte, nb int, a **Q8K, n int, acc *float32)

//go:noescape
func f32ToF16AVX2(dst *uint16, src *float32, n int)

//go:noescape
func scaleRoundF16AVX2(dst, src *float32, s float32, n int)

//go:noescape
func ropePairsAVX2(x, cs *float32, n int)

//go:noescape
func quantizeQ8_0AVX2(dst *byte, x *float32, nb int)

//go:noescape
func quantizeQ8_KAVX2(y *Q8K, x *float32, nb int)

//go:noescape
func swigluAVX2(gp, ex, u *float32, n int)

//go:noescape
func scaleMaxAVX2(x *float32, s float32, n int) float32

//go:noescape
func sum8AVX2(p *float32, n int) float64

//go:noescape
func dotQ8_0TilesAVX2(w *byte, rowBytes int, a **byte, out **float32, row int, groups int, nb int, tab *float32)

//go:noescape
func mixReduce8AVX2(dst, acc *float32, hd int)

//go:noescape
func mixReduce32AVX2(dst, acc *float32, hd int)
