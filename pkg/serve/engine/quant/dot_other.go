//go:build !amd64

package quant

const useAVX2 = false

func dotQ8_0AVX2(w, a *byte, nb int, tab *float32) float32 { panic("unreachable") }
func dotQ4_0AVX2(w, a *byte, nb int, tab *float32) float32 { panic("unreachable") }
func q4KSums(qs *byte, q8 *int8, out *[8]int32)          { panic("unreachable") }
func q6KSums(ql, qh *byte, q8 *int8, out *[16]int32)     { panic("unreachable") }
