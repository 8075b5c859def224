package quant

import "math"

// Element-wise helpers of the forward pass, eight at a time where the CPU
// has F16C/FMA; each is bit-identical to its scalar definition.

// F32ToF16s sets dst[i] = F32ToF16(src[i]) (NaNs aside, whose payload
// may differ; they stay NaNs).
func F32ToF16s(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	i := 0
	if useAVX2 && len(src) >= 8 {
		i = len(src) &^ 7
		f32ToF16AVX2(&dst[0], &src[0], i)
	}
	for ; i < len(src); i++ {
		dst[i] = F32ToF16(src[i])
	}
}

// ScaleRoundF16 sets dst[i] = RoundF16(src[i]*s).
func ScaleRoundF16(dst, src []float32, s float32) {
	dst = dst[:len(src)]
	i := 0
	if useAVX2 && len(src) >= 8 {
		i = len(src) &^ 7
		scaleRoundF16AVX2(&dst[0], &src[0], s, i)
	}
	for ; i < len(src); i++ {
		dst[i] = RoundF16(src[i] * s)
	}
}

// RopePairs rotates the adjacent pairs (x[2i], x[2i+1]) by the angles
// whose cosines and sines cs holds as (c, s) pairs, with the rounding of
// llama.cpp's FMA-contracted rope_f32: x0' = fma(x0, c, -(x1·s)) and
// x1' = fma(x0, s, x1·c).
func RopePairs(x, cs []float32) {
	n := len(x) &^ 1
	cs = cs[:n]
	i := 0
	if useAVX2 && n >= 8 {
		i = n &^ 7
		ropePairsAVX2(&x[0], &cs[0], i)
	}
	for ; i < n; i += 2 {
		c, s := cs[i], cs[i+1]
		x0, x1 := x[i], x[i+1]
		x[i] = FMA32(x0, c, -float32(x1*s))
		x[i+1] = FMA32(x0, s, float32(x1*c))
	}
}

// SwiGLUDiv sets g[i] = g[i] / (1 + ex[i]) * u[i] (the vector part of
// ggml_vec_swiglu_f32, ex holding e^-g).
func SwiGLUDiv(g, ex, u []float32) {
	n := len(g)
	ex, u = ex[:n], u[:n]
	i := 0
	if useAVX2 && n >= 8 {
		i = n &^ 7
		swigluAVX2(&g[0], &ex[0], &u[0], i)
	}
	for ; i < n; i++ {
		g[i] = g[i] / (1 + ex[i]) * u[i]
	}
}

// ScaleMax multiplies x by s in place and returns the largest result
// (-Inf for an empty x; NaNs aside).
func ScaleMax(x []float32, s float32) float32 {
	mx := float32(math.Inf(-1))
	i := 0
	if useAVX2 && len(x) >= 8 {
		i = len(x) &^ 7
		mx = scaleMaxAVX2(&x[0], s, i)
	}
	for ; i < len(x); i++ {
		x[i] *= s
		mx = max(mx, x[i])
	}
	return mx
}

// SoftmaxSum adds x as ggml_vec_soft_max_f32 does: each eight (the last
// padded with zeros) summed in float32 as (l0+l4 + l2+l6) + (l1+l5 + l3+l7),
// the sums added in float64.
func SoftmaxSum(x []float32) float64 {
	var sum float64
	i := 0
	if useAVX2 && len(x) >= 8 {
		i = len(x) &^ 7
		sum = sum8AVX2(&x[0], i)
	}
	for j0 := i; j0 < len(x); j0 += 8 {
		var l [8]float32
		copy(l[:], x[j0:min(j0+8, len(x))])
		r0, r1, r2, r3 := l[4]+l[0], l[5]+l[1], l[6]+l[2], l[7]+l[3]
		sum += float64((r0 + r2) + (r1 + r3))
	}
	return sum
}
