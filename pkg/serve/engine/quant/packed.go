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

// BlockQ4_Kx8 is one packed super-block of eight Q4_K rows (PackQ4_Kx8).
const BlockQ4_Kx8 = 1184

// HasPackedQ4_K reports whether the packed Q4_K kernels run in assembly here.
func HasPackedQ4_K() bool { return useAVX2 }

// PackQ4_Kx8 repacks a Q4_K matrix of rows (a multiple of 8) rows into
// groups of eight rows, each super-block as the kernels read it: the eight
// d, the eight dmin (f16, q4x8Lane order), the unpacked 6-bit scales
// (sub-block-major, lane order), each row pair's unpacked mins, then per
// 64-value sub-block pair and row pair the first and second 16 nibble bytes
// of both rows. Scales and mins are unpacked once here instead of per use.
func PackQ4_Kx8(src []byte, rows, cols int) []byte {
	nb := cols / QK_K
	rb := nb * BlockQ4_K
	dst := make([]byte, rows/8*nb*BlockQ4_Kx8)
	for g := 0; g < rows/8; g++ {
		for b := range nb {
			o := dst[(g*nb+b)*BlockQ4_Kx8 : (g*nb+b+1)*BlockQ4_Kx8]
			blk := func(r int) []byte { return src[(8*g+r)*rb+b*BlockQ4_K:] }
			for lane, r := range q4x8Lane {
				copy(o[2*lane:], blk(r)[0:2])
				copy(o[16+2*lane:], blk(r)[2:4])
				for k := range 8 {
					o[32+8*k+lane], _ = ScaleMinK4(k, blk(r)[4:16])
				}
			}
			for p := range 4 {
				for half := range 2 {
					for k := range 8 {
						_, o[96+16*p+8*half+k] = ScaleMinK4(k, blk(2*p + half)[4:16])
					}
				}
			}
			for j := range 4 {
				for p := range 4 {
					base := 160 + 256*j + 64*p
					q0, q1 := blk(2 * p)[16+32*j:], blk(2*p + 1)[16+32*j:]
					copy(o[base:base+16], q0[:16])
					copy(o[base+16:base+32], q1[:16])
					copy(o[base+32:base+48], q0[16:32])
					copy(o[base+48:base+64], q1[16:32])
				}
			}
		}
	}
	return dst
}

// GemmQ4_Kx8 multiplies one packed group of eight Q4_K rows (nb
// super-blocks) with every activation row a[t] and stores row r's result
// in out[t][row0+r]: bit-identical to DotQ4_KTile's when tile is set (the
// tokens llama.cpp runs through its gemm kernel), else to DotQ4_K's.
// scratch holds at least 16·len(a) floats, ptrs len(a) pointers.
func GemmQ4_Kx8(w []byte, nb int, a [][]Q8K, tile bool, out [][]float32, row0 int, scratch []float32, ptrs []*Q8K) {
	n := len(a)
	if n == 0 || nb == 0 {
		return
	}
	_ = w[nb*BlockQ4_Kx8-1]
	acc := scratch[:16*n]
	if useAVX2 {
		ptrs = ptrs[:n]
		for t := range a {
			_ = a[t][nb-1]
			ptrs[t] = &a[t][0]
		}
		if tile {
			gemmQ4_Kx8TileAVX2(&w[0], nb, &ptrs[0], n, &acc[0])
		} else {
			gemmQ4_Kx8AVX2(&w[0], nb, &ptrs[0], n, &acc[0])
		}
	} else {
		for t := range a {
			gemmQ4_Kx8Generic(w, nb, a[t], tile, (*[8]float32)(acc[16*t:]))
		}
	}
	for t := range a {
		o := out[t][row0 : row0+8 : row0+8]
		at := acc[16*t : 16*t+8 : 16*t+8]
		o[0], o[2], o[4], o[6] = at[0], at[1], at[2], at[3]
		o[1], o[3], o[5], o[7] = at[4], at[5], at[6], at[7]
	}
}

// gemmQ4_Kx8Generic is the portable twin: it reads each row's values back
// from the packed layout and performs dotQ4_KGeneric's or
// dotQ4_KTileGeneric's steps.
func gemmQ4_Kx8Generic(w []byte, nb int, a []Q8K, tile bool, acc *[8]float32) {
	for lane, r := range q4x8Lane {
		p, half := r/2, r%2
		var sum, summ float32
		for b := range nb {
			o := w[b*BlockQ4_Kx8 : (b+1)*BlockQ4_Kx8]
			y := &a[b]
			dd, dm := f16(o[2*lane:])*y.D, f16(o[16+2*lane:])*y.D
			var sumi, summi int32
			for j := range 4 {
				base := 160 + 256*j + 64*p + 16*half
				var d1, d2 int32
				for l := range 32 {
					q := o[base+l%16+32*(l/16)]
					d1 += int32(q&0xf) * int32(y.Qs[64*j+l])
					d2 += int32(q>>4) * int32(y.Qs[64*j+32+l])
				}
				s1, s2 := int32(o[32+8*(2*j)+lane]), int32(o[32+8*(2*j+1)+lane])
				m1, m2 := int32(o[96+16*p+8*half+2*j]), int32(o[96+16*p+8*half+2*j+1])
				mj := m1*(int32(y.Bsums[4*j])+int32(y.Bsums[4*j+1])) + m2*(int32(y.Bsums[4*j+2])+int32(y.Bsums[4*j+3]))
				if tile {
					sum = FMA32(float32(s1*d1+s2*d2), dd, sum)
					summ = FMA32(float32(mj), dm, summ)
				} else {
					sumi += s1*d1 + s2*d2
					summi += mj
				}
			}
			if !tile {
				sum = FMA32(float32(sumi), dd, sum)
				summ = FMA32(float32(summi), dm, summ)
			}
		}
		acc[lane] = sum - summ
	}
}
