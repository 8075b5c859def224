package quant

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
