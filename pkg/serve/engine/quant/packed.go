package quant

import (
	"encoding/binary"
	"math"
)

// Row-interleaved ("packed") weights. llama.cpp repacks Q4_0 matrices with a
// multiple of 8 rows into 8-row blocks at load time on AVX2 and multiplies
// them with kernels whose per-row float steps are one fused multiply-add of
// each block's exact integer sum (see dotQ4_0Generic). Keeping eight rows'
// results in the eight lanes of one vector performs exactly those steps
// with one activation load and no horizontal sum per row, which is most of
// the one-row kernel's work.

// Packed block sizes.
const (
	BlockQ4_0x8 = 8 * BlockQ4_0 // one block of eight rows
	BlockQ8_0x  = 40            // int8 qs[32], f32 d, int32 8·Σqs
)

// q4x8Lane is the row (within its group of eight) that each lane holds:
// the order the kernels' pairwise horizontal adds leave the sums in.
var q4x8Lane = [8]int{0, 2, 4, 6, 1, 3, 5, 7}

// HasPackedQ4_0 reports whether the packed Q4_0 kernels are worth using
// here (they run in assembly); elsewhere the row-by-row kernels are as fast.
func HasPackedQ4_0() bool { return useAVX2 }

// PackQ4_0x8 repacks a Q4_0 matrix of rows (a multiple of 8) rows of cols
// elements into groups of eight rows: for each group and block, the eight
// f16 scales (in q4x8Lane order), then for each row pair (2p, 2p+1) the 16
// nibble bytes of row 2p and of row 2p+1. The result has src's size.
func PackQ4_0x8(src []byte, rows, cols int) []byte {
	nb := cols / QK4_0
	rb := nb * BlockQ4_0
	dst := make([]byte, rows*rb)
	for g := 0; g < rows/8; g++ {
		for b := range nb {
			o := dst[(g*nb+b)*BlockQ4_0x8:]
			for lane, r := range q4x8Lane {
				blk := src[(8*g+r)*rb+b*BlockQ4_0:]
				copy(o[2*lane:2*lane+2], blk[:2])
			}
			for r := range 8 {
				blk := src[(8*g+r)*rb+b*BlockQ4_0:]
				copy(o[16+16*r:32+16*r], blk[2:18])
			}
		}
	}
	return dst
}

// PrepQ8_0x re-encodes Q8_0 activation blocks (QuantizeQ8_0's output) for
// the packed kernels: each block's int8 values, its scale as f32 and eight
// times the sum of its values (the nibbles' offset of 8, taken out once).
func PrepQ8_0x(dst, q8 []byte) {
	for i := 0; i < len(q8)/BlockQ8_0; i++ {
		b := q8[i*BlockQ8_0 : (i+1)*BlockQ8_0]
		o := dst[i*BlockQ8_0x : (i+1)*BlockQ8_0x]
		copy(o[:32], b[2:34])
		var s int32
		for _, q := range b[2:34] {
			s += int32(int8(q))
		}
		binary.LittleEndian.PutUint32(o[32:], math.Float32bits(f16(b)))
		binary.LittleEndian.PutUint32(o[36:], uint32(8*s))
	}
}

// GemmQ4_0x8 multiplies one packed group of eight Q4_0 rows (nb blocks, as
// PackQ4_0x8 lays them out) with every activation row a[t] (PrepQ8_0x
// blocks) and stores row r's result in out[t][row0+r]. Each result is
// bit-identical to DotQ4_0 of the unpacked row. scratch holds at least
// 8·len(a) floats.
func GemmQ4_0x8(w []byte, nb int, a [][]byte, out [][]float32, row0 int, scratch []float32, ptrs []*byte) {
	n := len(a)
	if n == 0 || nb == 0 {
		return
	}
	_ = w[nb*BlockQ4_0x8-1]
	acc := scratch[:8*n]
	if useAVX2 {
		if n == 1 {
			_ = a[0][nb*BlockQ8_0x-1]
			gemvQ4_0x8AVX2(&w[0], nb, &a[0][0], (*[8]float32)(acc))
		} else {
			ptrs = ptrs[:n]
			for t := range a {
				_ = a[t][nb*BlockQ8_0x-1]
				ptrs[t] = &a[t][0]
			}
			gemmQ4_0x8AVX2(&w[0], nb, &ptrs[0], n, &acc[0])
		}
	} else {
		for t := range a {
			gemmQ4_0x8Generic(w, nb, a[t], (*[8]float32)(acc[8*t:]))
		}
	}
	for t := range a {
		o := out[t][row0 : row0+8 : row0+8]
		at := acc[8*t : 8*t+8 : 8*t+8]
		o[0], o[2], o[4], o[6] = at[0], at[1], at[2], at[3]
		o[1], o[3], o[5], o[7] = at[4], at[5], at[6], at[7]
	}
}

func gemmQ4_0x8Generic(w []byte, nb int, a []byte, acc *[8]float32) {
	for lane, r := range q4x8Lane {
		var sum float32
		for b := range nb {
			blk := w[b*BlockQ4_0x8 : (b+1)*BlockQ4_0x8]
			ab := a[b*BlockQ8_0x : (b+1)*BlockQ8_0x]
			q := blk[16+16*r : 32+16*r]
			var s int32
			for e := range 32 {
				v := int32(q[e%16] & 0xf)
				if e >= 16 {
					v = int32(q[e-16] >> 4)
				}
				s += (v - 8) * int32(int8(ab[e]))
			}
			da := math.Float32frombits(binary.LittleEndian.Uint32(ab[32:]))
			sum = FMA32(float32(s), f16(blk[2*lane:])*da, sum)
		}
		acc[lane] = sum
	}
}
