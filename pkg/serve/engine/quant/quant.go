// Package quant holds the tensor encodings the engine computes with: IEEE
// half floats, the ggml block formats Q8_0, Q4_0, Q4_K and Q6_K, the
// activation encodings llama.cpp pairs them with (Q8_0 activations for
// Q8_0/Q4_0 weights, Q8_K for K-quants, F16 for F16 weights), row dequantizers
// and the dot products between a weight row and an encoded activation row.
//
// The arithmetic mirrors ggml's CPU backend: integer dot products within a
// block, then one float scale per block, so results agree with llama.cpp to
// float rounding.
package quant

import (
	"encoding/binary"
	"math"
)

// Block geometry.
const (
	QK8_0 = 32
	QK4_0 = 32
	QK_K  = 256

	BlockQ8_0 = 34  // f16 d, int8 qs[32]
	BlockQ4_0 = 18  // f16 d, uint8 qs[16]
	BlockQ4_K = 144 // f16 d, f16 dmin, scales[12], qs[128]
	BlockQ6_K = 210 // ql[128], qh[64], int8 scales[16], f16 d
)

// f16Table holds every half float's value; conversions are table lookups.
var f16Table = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = f16ToF32Slow(uint16(i))
	}
	return &t
}()

// F16ToF32 converts an IEEE binary16 value.
func F16ToF32(h uint16) float32 { return f16Table[h] }

func f16ToF32Slow(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// F32ToF16 converts with round-to-nearest-even, as the F16C instruction does.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		rem := mant & (1<<shift - 1)
		m := mant >> shift
		if rem > half || (rem == half && m&1 == 1) {
			m++
		}
		return sign | uint16(m)
	}
	m := mant >> 13
	rem := mant & 0x1fff
	h := uint32(e)<<10 | m
	if rem > 0x1000 || (rem == 0x1000 && m&1 == 1) {
		h++ // may carry into the exponent, which is the correct result
	}
	return sign | uint16(h)
}

func f16(b []byte) float32 { return F16ToF32(binary.LittleEndian.Uint16(b)) }

// RoundF16 rounds v to the nearest half-float value.
func RoundF16(v float32) float32 { return F16ToF32(F32ToF16(v)) }

// nearestInt rounds half to even like ggml's nearest_int (|v| < 2^22).
func nearestInt(v float32) int32 {
	return int32(math.RoundToEven(float64(v)))
}

// QuantizeQ8_0 encodes x (len a multiple of 32) into dst (len/32 blocks) the
// way ggml's AVX2 quantize_row_q8_0 does: scale 127/amax, round to nearest even.
func QuantizeQ8_0(dst []byte, x []float32) {
	if nb := len(x) / QK8_0; useAVX2 && nb > 0 {
		_ = dst[nb*BlockQ8_0-1]
		quantizeQ8_0AVX2(&dst[0], &x[0], nb)
		return
	}
	quantizeQ8_0Generic(dst, x)
}

func quantizeQ8_0Generic(dst []byte, x []float32) {
	for i := 0; i < len(x)/QK8_0; i++ {
		blk := x[i*QK8_0 : (i+1)*QK8_0]
		out := dst[i*BlockQ8_0 : (i+1)*BlockQ8_0]
		var amax float32
		for _, v := range blk {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		binary.LittleEndian.PutUint16(out, F32ToF16(d))
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		for j, v := range blk {
			out[2+j] = byte(int8(nearestInt(v * id)))
		}
	}
}

// Q8K is one Q8_K activation block, laid out as ggml's block_q8_K (the
// assembly kernels depend on it: D at 0, Qs at 4, Bsums at 260, 292 bytes).
type Q8K struct {
	D     float32
	Qs    [QK_K]int8
	Bsums [QK_K / 16]int16
}

// QuantizeQ8_K encodes x (len a multiple of 256) as quantize_row_q8_K_ref:
// scale by the signed value of largest magnitude.
func QuantizeQ8_K(dst []Q8K, x []float32) {
	nb := len(x) / QK_K
	if !useAVX2 || nb == 0 {
		quantizeQ8_KGeneric(dst, x)
		return
	}
	dst = dst[:nb]
	quantizeQ8_KAVX2(&dst[0], &x[0], nb)
	for i := range dst {
		y := &dst[i]
		if y.D == 0 { // an all-zero block
			*y = Q8K{}
			continue
		}
		for j := range y.Bsums {
			q := y.Qs[16*j : 16*j+16 : 16*j+16]
			s := int32(q[0]) + int32(q[1]) + int32(q[2]) + int32(q[3]) +
				int32(q[4]) + int32(q[5]) + int32(q[6]) + int32(q[7]) +
				int32(q[8]) + int32(q[9]) + int32(q[10]) + int32(q[11]) +
				int32(q[12]) + int32(q[13]) + int32(q[14]) + int32(q[15])
			y.Bsums[j] = int16(s)
		}
	}
}

func quantizeQ8_KGeneric(dst []Q8K, x []float32) {
	for i := range dst[:len(x)/QK_K] {
		blk := x[i*QK_K : (i+1)*QK_K]
		y := &dst[i]
		var amax, mx float32
		for _, v := range blk {
			if a := float32(math.Abs(float64(v))); a > amax {
				amax, mx = a, v
			}
		}
		if amax == 0 {
			*y = Q8K{}
			continue
		}
		iscale := -127 / mx
		for j, v := range blk {
			y.Qs[j] = int8(min(127, nearestInt(iscale*v)))
		}
		for j := range y.Bsums {
			var s int32
			for _, q := range y.Qs[j*16 : j*16+16] {
				s += int32(q)
			}
			y.Bsums[j] = int16(s)
		}
		y.D = 1 / iscale
	}
}

// DotQ8_0 is the dot product of a Q8_0 weight row and Q8_0 activations.
func DotQ8_0(w, a []byte, n int) float32 {
	// One row of the Rows kernel: a single dispatch for both.
	var out [1]float32
	DotQ8_0Rows(w, a, n, out[:])
	return out[0]
}

// DotQ8_0Rows sets out[r] = DotQ8_0(row r, a, n) for the len(out)
// consecutive rows at w: one call for a range of rows.
func DotQ8_0Rows(w, a []byte, n int, out []float32) {
	nb := n / QK8_0
	if useAVX2 && nb > 0 && len(out) > 0 {
		_, _ = w[len(out)*nb*BlockQ8_0-1], a[nb*BlockQ8_0-1]
		dotQ8_0AVX2(&w[0], &a[0], nb, len(out), &f16Table[0], &out[0])
		return
	}
	rb := nb * BlockQ8_0
	for r := range out {
		out[r] = dotQ8_0Generic(w[r*rb:], a, n)
	}
}

// DotQ8_0x4 is DotQ8_0 of one weight row with four activation rows, each
// result bit-identical to DotQ8_0's.
func DotQ8_0x4(w, a0, a1, a2, a3 []byte, n int, out *[4]float32) {
	nb := n / QK8_0
	if useAVX2 && nb > 0 {
		l := nb*BlockQ8_0 - 1
		_, _, _, _, _ = w[l], a0[l], a1[l], a2[l], a3[l]
		dotQ8_0AVX2x4(&w[0], &a0[0], &a1[0], &a2[0], &a3[0], nb, &f16Table[0], out)
		return
	}
	out[0], out[1], out[2], out[3] = DotQ8_0(w, a0, n), DotQ8_0(w, a1, n), DotQ8_0(w, a2, n), DotQ8_0(w, a3, n)
}

// Q8_0Tiles is a batch of Q8_0 activation rows and the output rows their
// products go to, prepared once per matrix product for DotTiles.
type Q8_0Tiles struct {
	a    [][]byte
	out  [][]float32
	ap   []*byte
	op   []*float32
	n    int // values per activation row
	rows int // values per output row
}

// NewQ8_0Tiles prepares the first len(a)/4*4 activation rows (Q8_0 blocks
// of n values) and their output rows (at least rows long).
func NewQ8_0Tiles(a [][]byte, out [][]float32, n, rows int) Q8_0Tiles {
	k := len(a) / 4 * 4
	nb := n / QK8_0
	b := Q8_0Tiles{a: a[:k], out: out[:k], ap: make([]*byte, k), op: make([]*float32, k), n: n, rows: rows}
	for t := range k {
		_, _ = a[t][nb*BlockQ8_0-1], out[t][rows-1]
		b.ap[t], b.op[t] = &a[t][0], &out[t][0]
	}
	return b
}

// DotTiles computes rows row and row+1 of a Q8_0 matrix (w holds both,
// rowBytes apart; the output rows must hold row+2 values, as promised to
// NewQ8_0Tiles) against every activation row of b, four at a time, with
// DotQ8_0's steps: out[t][row+r] is bit-identical to DotQ8_0.
func (b Q8_0Tiles) DotTiles(w []byte, rowBytes, row, n int) {
	nb := n / QK8_0
	if len(b.a) == 0 || nb == 0 {
		return
	}
	if n != b.n || row < 0 || row+2 > b.rows {
		panic("quant: DotTiles outside the prepared batch")
	}
	if useAVX2 && rowBytes >= nb*BlockQ8_0 {
		_ = w[rowBytes+nb*BlockQ8_0-1]
		dotQ8_0TilesAVX2(&w[0], rowBytes, &b.ap[0], &b.op[0], row, len(b.a)/4, nb, &f16Table[0])
		return
	}
	for t, a := range b.a {
		b.out[t][row] = dotQ8_0Generic(w, a, n)
		b.out[t][row+1] = dotQ8_0Generic(w[rowBytes:], a, n)
	}
}

// dotQ8_0Generic follows the assembly (ggml's AVX2 order): per block, eight
// int32 lanes of four products each, each fused-multiply-added with
// d_w·d_a into its own float lane, the lanes added as hsum8 does.
func dotQ8_0Generic(w, a []byte, n int) float32 {
	var acc [8]float32
	for i := 0; i < n/QK8_0; i++ {
		wb := w[i*BlockQ8_0 : (i+1)*BlockQ8_0]
		ab := a[i*BlockQ8_0 : (i+1)*BlockQ8_0]
		d := f16(wb) * f16(ab)
		wq, aq := wb[2:34], ab[2:34]
		for k := range 8 {
			var s int32
			for e := 4 * k; e < 4*k+4; e++ {
				s += int32(int8(wq[e])) * int32(int8(aq[e]))
			}
			acc[k] = FMA32(d, float32(s), acc[k])
		}
	}
	return hsum8(&acc)
}

// DotQ4_0 is the dot product of a Q4_0 weight row and Q8_0 activations.
func DotQ4_0(w, a []byte, n int) float32 {
	nb := n / QK4_0
	if useAVX2 && nb > 0 {
		_, _ = w[nb*BlockQ4_0-1], a[nb*BlockQ8_0-1]
		return dotQ4_0AVX2(&w[0], &a[0], nb, &f16Table[0])
	}
	return dotQ4_0Generic(w, a, n)
}

// DotQ4_0x4 is DotQ4_0 of one weight row with four activation rows, each
// result bit-identical to DotQ4_0's.
func DotQ4_0x4(w, a0, a1, a2, a3 []byte, n int, out *[4]float32) {
	nb := n / QK4_0
	if useAVX2 && nb > 0 {
		l := nb*BlockQ8_0 - 1
		_, _, _, _, _ = w[nb*BlockQ4_0-1], a0[l], a1[l], a2[l], a3[l]
		dotQ4_0AVX2x4(&w[0], &a0[0], &a1[0], &a2[0], &a3[0], nb, &f16Table[0], out)
		return
	}
	out[0], out[1], out[2], out[3] = DotQ4_0(w, a0, n), DotQ4_0(w, a1, n), DotQ4_0(w, a2, n), DotQ4_0(w, a3, n)
}

// dotQ4_0Generic follows the assembly, which follows llama.cpp's repacked
// q4_0_8x8 kernels (llama.cpp repacks every Q4_0 matrix with a multiple of
// 8 rows on AVX2): per block the exact int32 sum, fused-multiply-added with
// d_w·d_a into one float. Element e of a block is the low nibble of byte e
// for e < 16, else the high nibble of byte e-16.
func dotQ4_0Generic(w, a []byte, n int) float32 {
	var acc float32
	for i := 0; i < n/QK4_0; i++ {
		wb := w[i*BlockQ4_0 : (i+1)*BlockQ4_0]
		ab := a[i*BlockQ8_0 : (i+1)*BlockQ8_0]
		q, aq := wb[2:18], ab[2:34]
		var s int32
		for e := range 32 {
			v := int32(q[e%16] & 0xf)
			if e >= 16 {
				v = int32(q[e-16] >> 4)
			}
			s += (v - 8) * int32(int8(aq[e]))
		}
		acc = FMA32(float32(s), f16(wb)*f16(ab), acc)
	}
	return acc
}

// ScaleMinK4 unpacks the j-th 6-bit scale and min of a Q4_K block.
func ScaleMinK4(j int, q []byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xf | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// DotQ4_K is the dot product of a Q4_K weight row and Q8_K activations.
//
// On AVX2 CPUs llama.cpp repacks Q4_K weights eight rows at a time and
// multiplies them with ggml_gemv/gemm_q4_K_8x8_q8_K, not with
// ggml_vec_dot_q4_K_q8_K, so the float steps here follow those kernels: per
// super-block the exact integer sums Σ scale·(q4·q8) and Σ min·bsum, each
// fused-multiply-added into its own running float (weighted by d·y.d and
// dmin·y.d), and the two runnings subtracted once at the end. Any other
// order differs in the last bit often enough to flip a later rounding.
func DotQ4_K(w []byte, a []Q8K, n int) float32 {
	// One row of the Rows kernel: a single dispatch for both.
	var out [1]float32
	DotQ4_KRows(w, a, n, out[:])
	return out[0]
}

// DotQ4_KRows sets out[r] = DotQ4_K(row r, a, n) for the len(out)
// consecutive rows at w.
func DotQ4_KRows(w []byte, a []Q8K, n int, out []float32) {
	nb := n / QK_K
	if useAVX2 && nb > 0 && len(out) > 0 {
		_, _ = w[len(out)*nb*BlockQ4_K-1], a[nb-1]
		dotQ4_KAVX2(&w[0], &a[0], nb, len(out), &f16Table[0], &out[0])
		return
	}
	rb := nb * BlockQ4_K
	for r := range out {
		out[r] = dotQ4_KGeneric(w[r*rb:], a, n)
	}
}

// DotQ4_Kx4 computes the dot products of one Q4_K weight row with four
// Q8_K activation rows into out, each bit-identical to DotQ4_K.
func DotQ4_Kx4(w []byte, a0, a1, a2, a3 []Q8K, n int, out *[4]float32) {
	nb := n / QK_K
	if useAVX2 && nb > 0 {
		_, _, _, _, _ = w[nb*BlockQ4_K-1], a0[nb-1], a1[nb-1], a2[nb-1], a3[nb-1]
		var scratch [16]float32
		dotQ4_KAVX2x4(&w[0], &a0[0], &a1[0], &a2[0], &a3[0], nb, &f16Table[0], &scratch, out)
		return
	}
	out[0], out[1], out[2], out[3] = DotQ4_K(w, a0, n), DotQ4_K(w, a1, n), DotQ4_K(w, a2, n), DotQ4_K(w, a3, n)
}

// DotQ4_KTile computes the dot products of one Q4_K weight row with four
// Q8_K activation rows the way llama.cpp's ggml_gemm_q4_K_8x8_q8_K does,
// the kernel it uses (on AVX2, for repacked Q4_K weights) for a batch's rows
// in groups of four, while a batch's last n%4 rows go through the gemv
// kernel that DotQ4_K follows. The two differ only in float rounding: the
// gemm kernel fused-multiply-adds its integer sums once per 64-value
// sub-block pair instead of once per super-block.
func DotQ4_KTile(w []byte, a0, a1, a2, a3 []Q8K, n int, out *[4]float32) {
	nb := n / QK_K
	if useAVX2 && nb > 0 {
		_, _, _, _, _ = w[nb*BlockQ4_K-1], a0[nb-1], a1[nb-1], a2[nb-1], a3[nb-1]
		var scratch [16]float32
		dotQ4_KAVX2x4g(&w[0], &a0[0], &a1[0], &a2[0], &a3[0], nb, &f16Table[0], &scratch, out)
		return
	}
	for i, a := range [4][]Q8K{a0, a1, a2, a3} {
		out[i] = dotQ4_KTileGeneric(w, a, n)
	}
}

func dotQ4_KTileGeneric(w []byte, a []Q8K, n int) float32 {
	var acc, accm float32
	for i := 0; i < n/QK_K; i++ {
		b := w[i*BlockQ4_K : (i+1)*BlockQ4_K]
		y := &a[i]
		sc := b[4:16]
		qs := b[16:144]
		dd, dm := f16(b[0:])*y.D, f16(b[2:])*y.D
		for j := range 4 {
			s1, m1 := ScaleMinK4(2*j, sc)
			s2, m2 := ScaleMinK4(2*j+1, sc)
			q := qs[32*j : 32*j+32]
			a1 := y.Qs[64*j : 64*j+32]
			a2 := y.Qs[64*j+32 : 64*j+64]
			var d1, d2 int32
			for l := range 32 {
				d1 += int32(q[l]&0xf) * int32(a1[l])
				d2 += int32(q[l]>>4) * int32(a2[l])
			}
			summ := int32(m1)*(int32(y.Bsums[4*j])+int32(y.Bsums[4*j+1])) +
				int32(m2)*(int32(y.Bsums[4*j+2])+int32(y.Bsums[4*j+3]))
			acc = FMA32(float32(int32(s1)*d1+int32(s2)*d2), dd, acc)
			accm = FMA32(float32(summ), dm, accm)
		}
	}
	return acc - accm
}

func dotQ4_KGeneric(w []byte, a []Q8K, n int) float32 {
	var acc, accm float32
	for i := 0; i < n/QK_K; i++ {
		b := w[i*BlockQ4_K : (i+1)*BlockQ4_K]
		y := &a[i]
		sc := b[4:16]
		qs := b[16:144]
		var sumi, summ int32
		for j := range 4 {
			s1, m1 := ScaleMinK4(2*j, sc)
			s2, m2 := ScaleMinK4(2*j+1, sc)
			q := qs[32*j : 32*j+32]
			a1 := y.Qs[64*j : 64*j+32]
			a2 := y.Qs[64*j+32 : 64*j+64]
			var d1, d2 int32
			for l := range 32 {
				d1 += int32(q[l]&0xf) * int32(a1[l])
				d2 += int32(q[l]>>4) * int32(a2[l])
			}
			sumi += int32(s1)*d1 + int32(s2)*d2
			summ += int32(m1)*(int32(y.Bsums[4*j])+int32(y.Bsums[4*j+1])) +
				int32(m2)*(int32(y.Bsums[4*j+2])+int32(y.Bsums[4*j+3]))
		}
		acc = FMA32(float32(sumi), f16(b[0:])*y.D, acc)
		accm = FMA32(float32(summ), f16(b[2:])*y.D, accm)
	}
	return acc - accm
}

// FMA32 is a*b+c rounded once to float32, as the FMA instructions compute
// it. The float64 FMA rounds the exact value once to 53 bits; rounding that
// to float32 is correct unless it landed exactly halfway between two float32
// values (or below float32's normal range), which fma32Exact settles.
func FMA32(a, b, c float32) float32 {
	s := math.FMA(float64(a), float64(b), float64(c))
	bits := math.Float64bits(s)
	if bits&(1<<29-1) != 1<<28 && bits&0x7ff0000000000000 >= uint64(1023-126)<<52 {
		return float32(s)
	}
	return fma32Exact(a, b, c)
}

// fma32Exact: the product is exact in float64; the sum is rounded to
// float64 and its rounding error kept, which settles the one case where
// rounding the float64 sum to float32 would round twice: a float64 sum that
// lies exactly halfway between two float32 values.
func fma32Exact(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	s := p + float64(c)
	bv := s - p
	e := (p - (s - bv)) + (float64(c) - bv)
	r := float32(s)
	if e == 0 || float64(r) == s {
		return r
	}
	lo, hi := r, r
	if float64(r) < s {
		hi = math.Nextafter32(r, float32(math.Inf(1)))
	} else {
		lo = math.Nextafter32(r, float32(math.Inf(-1)))
	}
	if s != (float64(lo)+float64(hi))/2 {
		return r
	}
	if e > 0 {
		return hi
	}
	return lo
}

// DotQ6_K is the dot product of a Q6_K weight row and Q8_K activations.
func DotQ6_K(w []byte, a []Q8K, n int) float32 {
	// One row of the Rows kernel: a single dispatch for both.
	var out [1]float32
	DotQ6_KRows(w, a, n, out[:])
	return out[0]
}

// DotQ6_KRows sets out[r] = DotQ6_K(row r, a, n) for the len(out)
// consecutive rows at w.
func DotQ6_KRows(w []byte, a []Q8K, n int, out []float32) {
	nb := n / QK_K
	if useAVX2 && nb > 0 && len(out) > 0 {
		_, _ = w[len(out)*nb*BlockQ6_K-1], a[nb-1]
		dotQ6_KAVX2(&w[0], &a[0], nb, len(out), &f16Table[0], &out[0])
		return
	}
	rb := nb * BlockQ6_K
	for r := range out {
		out[r] = dotQ6_KGeneric(w[r*rb:], a, n)
	}
}

// DotQ6_Kx4 computes the dot products of one Q6_K weight row with four
// Q8_K activation rows into out, each bit-identical to DotQ6_K.
func DotQ6_Kx4(w []byte, a0, a1, a2, a3 []Q8K, n int, out *[4]float32) {
	nb := n / QK_K
	if useAVX2 && nb > 0 {
		_, _, _, _, _ = w[nb*BlockQ6_K-1], a0[nb-1], a1[nb-1], a2[nb-1], a3[nb-1]
		var scratch [32]float32
		dotQ6_KAVX2x4(&w[0], &a0[0], &a1[0], &a2[0], &a3[0], nb, &f16Table[0], &scratch, out)
		return
	}
	out[0], out[1], out[2], out[3] = DotQ6_K(w, a0, n), DotQ6_K(w, a1, n), DotQ6_K(w, a2, n), DotQ6_K(w, a3, n)
}

// dotQ6_KGeneric follows ggml_vec_dot_q6_K_q8_K's AVX2 arithmetic exactly:
// eight int32 lanes, lane k holding the products of bytes 4k..4k+3 of every
// 32-value chunk (unsigned 6-bit values times scale) minus 32·(bsums[2k]·
// sc[2k] + bsums[2k+1]·sc[2k+1]); each lane fused-multiply-added into its
// own float accumulator; the eight added pairwise as hsum_float_8 does.
func dotQ6_KGeneric(w []byte, a []Q8K, n int) float32 {
	var acc [8]float32
	for i := 0; i < n/QK_K; i++ {
		b := w[i*BlockQ6_K : (i+1)*BlockQ6_K]
		y := &a[i]
		sc := b[192:208]
		var lanes [8]int32
		for h := range 2 {
			ql := b[64*h : 64*h+64]
			qh := b[128+32*h : 128+32*h+32]
			q8 := y.Qs[128*h : 128*h+128]
			for l := range 32 {
				q := [4]int32{
					int32(ql[l]&0xf | (qh[l]&3)<<4),
					int32(ql[l+32]&0xf | ((qh[l]>>2)&3)<<4),
					int32(ql[l]>>4 | ((qh[l]>>4)&3)<<4),
					int32(ql[l+32]>>4 | ((qh[l]>>6)&3)<<4),
				}
				for p, v := range q {
					s := int32(int8(sc[2*(4*h+p)+l/16]))
					lanes[l/4] += s * v * int32(q8[32*p+l])
				}
			}
		}
		d := y.D * f16(b[208:])
		for k := range lanes {
			lanes[k] -= 32 * (int32(y.Bsums[2*k])*int32(int8(sc[2*k])) + int32(y.Bsums[2*k+1])*int32(int8(sc[2*k+1])))
			acc[k] = FMA32(d, float32(lanes[k]), acc[k])
		}
	}
	return hsum8(&acc)
}

// DotF16 is the dot product of an F16 weight row and F16 activations.
func DotF16(w []byte, a []uint16, n int) float32 {
	var sum float32
	for i := range n {
		sum += F16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * F16ToF32(a[i])
	}
	return sum
}

// DotF32 is the dot product of an F32 weight row and F32 activations.
func DotF32(w []byte, a []float32, n int) float32 {
	var sum float32
	for i := range n {
		sum += math.Float32frombits(binary.LittleEndian.Uint32(w[4*i:])) * a[i]
	}
	return sum
}

// DequantRow decodes n elements of encoding typ (a gguf type id) into dst.
// It reports false for an unsupported type.
func DequantRow(typ uint32, src []byte, dst []float32) bool {
	n := len(dst)
	switch typ {
	case 0: // F32
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case 1: // F16
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case 8: // Q8_0
		for i := 0; i < n/QK8_0; i++ {
			b := src[i*BlockQ8_0:]
			d := f16(b)
			for j := range 32 {
				dst[i*32+j] = d * float32(int8(b[2+j]))
			}
		}
	case 2: // Q4_0
		for i := 0; i < n/QK4_0; i++ {
			b := src[i*BlockQ4_0:]
			d := f16(b)
			for j := range 16 {
				dst[i*32+j] = d * float32(int32(b[2+j]&0xf)-8)
				dst[i*32+j+16] = d * float32(int32(b[2+j]>>4)-8)
			}
		}
	case 12: // Q4_K
		for i := 0; i < n/QK_K; i++ {
			b := src[i*BlockQ4_K:]
			d, dmin := f16(b), f16(b[2:])
			y := dst[i*QK_K:]
			for j := range 4 {
				s1, m1 := ScaleMinK4(2*j, b[4:16])
				s2, m2 := ScaleMinK4(2*j+1, b[4:16])
				d1, dm1 := d*float32(s1), dmin*float32(m1)
				d2, dm2 := d*float32(s2), dmin*float32(m2)
				q := b[16+32*j:]
				for l := range 32 {
					y[64*j+l] = d1*float32(q[l]&0xf) - dm1
					y[64*j+32+l] = d2*float32(q[l]>>4) - dm2
				}
			}
		}
	case 14: // Q6_K
		for i := 0; i < n/QK_K; i++ {
			b := src[i*BlockQ6_K:]
			d := f16(b[208:])
			y := dst[i*QK_K:]
			for h := range 2 {
				ql := b[64*h:]
				qh := b[128+32*h:]
				sc := b[192+8*h:]
				for l := range 32 {
					is := l / 16
					q1 := int32(ql[l]&0xf|(qh[l]&3)<<4) - 32
					q2 := int32(ql[l+32]&0xf|((qh[l]>>2)&3)<<4) - 32
					q3 := int32(ql[l]>>4|((qh[l]>>4)&3)<<4) - 32
					q4 := int32(ql[l+32]>>4|((qh[l]>>6)&3)<<4) - 32
					y[128*h+l] = d * float32(int8(sc[is])) * float32(q1)
					y[128*h+l+32] = d * float32(int8(sc[is+2])) * float32(q2)
					y[128*h+l+64] = d * float32(int8(sc[is+4])) * float32(q3)
					y[128*h+l+96] = d * float32(int8(sc[is+6])) * float32(q4)
				}
			}
		}
	default:
		return false
	}
	return true
}

// ScoresF16Tile sets out[j] to the dot product of key row j (of stride
// elements) with q with the rounding of llama.cpp's tinyBLAS
// (llamafile_sgemm), which computes attention for a batch of two or more
// tokens: per row, eight lanes each fused-multiply-add every eighth
// product, then the lanes are added pairwise. q holds F16-rounded values;
// len(q) must be a multiple of 8.
func ScoresF16Tile(out []float32, k []uint16, stride int, q []float32) {
	if useAVX2 && len(out) > 0 && len(q) > 0 {
		// scoresF16AVX2 accumulates exactly this way.
		_ = k[(len(out)-1)*stride+len(q)-1]
		scoresF16AVX2(&k[0], stride, &q[0], len(q), len(out), &out[0])
		return
	}
	scoresF16TileGeneric(out, k, stride, q)
}

func scoresF16TileGeneric(out []float32, k []uint16, stride int, q []float32) {
	for j := range out {
		row := k[j*stride : j*stride+len(q)]
		var c [8]float32
		for l := 0; l < len(q); l += 8 {
			for i := range 8 {
				c[i] = FMA32(F16ToF32(row[l+i]), q[l+i], c[i])
			}
		}
		out[j] = hsum8(&c)
	}
}

// MixF16Tile sets dst[d] = Σ_j p[j]·v[j*stride+d] with tinyBLAS's rounding
// (see ScoresF16Tile): lane j%8 of eight accumulators per d takes position
// j, and the eight are added as hsum8 does. p holds F16-rounded
// probabilities. Positions past len(p) that llama.cpp pads with zero
// probabilities leave the lanes as they are, so they need no counterpart
// here. acc is scratch of at least 8*len(dst).
func MixF16Tile(dst []float32, v []uint16, stride int, p []float32, acc []float32) {
	hd := len(dst)
	acc = acc[:8*hd]
	mixAcc(acc, v, stride, p, hd, 8)
	if useAVX2 && hd%8 == 0 && hd > 0 {
		mixReduce8AVX2(&dst[0], &acc[0], hd) // the same additions, 8 d at a time
		return
	}
	mixReduce8Generic(dst, acc)
}

func mixReduce8Generic(dst, acc []float32) {
	hd := len(dst)
	for d := range dst {
		var c [8]float32
		for l := range 8 {
			c[l] = acc[l*hd+d]
		}
		dst[d] = hsum8(&c)
	}
}

// mixAcc runs the per-lane accumulation of MixF16Tile (lanes 8) and
// MixF16Vec (lanes 32) into acc[(j%lanes)*hd+d].
func mixAcc(acc []float32, v []uint16, stride int, p []float32, hd, lanes int) {
	clear(acc)
	if len(p) == 0 || hd == 0 {
		return
	}
	_ = v[(len(p)-1)*stride+hd-1]
	if useAVX2 && hd%8 == 0 {
		mixAccF16AVX2(&acc[0], &v[0], stride, &p[0], hd, len(p), lanes)
		return
	}
	mixAccGeneric(acc, v, stride, p, hd, lanes)
}

func mixAccGeneric(acc []float32, v []uint16, stride int, p []float32, hd, lanes int) {
	for j, pj := range p {
		row := v[j*stride : j*stride+hd]
		a := acc[(j%lanes)*hd : (j%lanes+1)*hd]
		for d, h := range row {
			a[d] = FMA32(F16ToF32(h), pj, a[d])
		}
	}
}

// hsum8 adds eight lanes as the AVX horizontal sums do: the upper four to
// the lower four, then lanes 2,3 to 0,1, then lane 1 to lane 0.
func hsum8(c *[8]float32) float32 {
	r0, r1, r2, r3 := c[4]+c[0], c[5]+c[1], c[6]+c[2], c[7]+c[3]
	return (r0 + r2) + (r1 + r3)
}

// ScoresF16Vec sets out[j] to the dot product of key row j (of stride
// elements) with q as ggml_vec_dot_f16 computes it on AVX2, which llama.cpp
// uses for a single token's attention: four 8-lane accumulators take
// consecutive groups of 8 of every 32 elements by fused multiply-add, are
// reduced pairwise and horizontally, and the n%32 leftovers are added in
// float64. q holds F16-rounded values.
func ScoresF16Vec(out []float32, k []uint16, stride int, q []float32) {
	hd := len(q)
	np := hd &^ 31
	if useAVX2 && np == hd && hd > 0 && len(out) > 0 {
		_ = k[(len(out)-1)*stride+hd-1]
		scoresF16VecAVX2(&k[0], stride, &q[0], hd, len(out), &out[0])
		return
	}
	scoresF16VecGeneric(out, k, stride, q)
}

func scoresF16VecGeneric(out []float32, k []uint16, stride int, q []float32) {
	hd := len(q)
	np := hd &^ 31
	for j := range out {
		row := k[j*stride : j*stride+hd]
		var s [4][8]float32
		for i := 0; i < np; i += 32 {
			for a := range 4 {
				for l := range 8 {
					e := i + 8*a + l
					s[a][l] = FMA32(F16ToF32(row[e]), q[e], s[a][l])
				}
			}
		}
		sum := float64(reduceF16Vec(&s))
		for i := np; i < hd; i++ {
			sum += float64(F16ToF32(row[i]) * q[i])
		}
		out[j] = float32(sum)
	}
}

// MixF16Vec sets dst[d] = Σ_j p[j]·v[j*stride+d] as ggml_vec_dot_f16 does
// over llama.cpp's cache length (a multiple of 256, so no leftovers; the
// zero probabilities of its unused positions leave the lanes unchanged):
// lane j%32 of 32 accumulators per d takes position j. p holds F16-rounded
// probabilities; acc is scratch of at least 32*len(dst).
func MixF16Vec(dst []float32, v []uint16, stride int, p []float32, acc []float32) {
	hd := len(dst)
	acc = acc[:32*hd]
	mixAcc(acc, v, stride, p, hd, 32)
	if useAVX2 && hd%8 == 0 && hd > 0 {
		mixReduce32AVX2(&dst[0], &acc[0], hd) // the same additions, 8 d at a time
		return
	}
	mixReduce32Generic(dst, acc)
}

func mixReduce32Generic(dst, acc []float32) {
	hd := len(dst)
	for d := range dst {
		var s [4][8]float32
		for c := range 32 {
			s[c/8][c%8] = acc[c*hd+d]
		}
		dst[d] = reduceF16Vec(&s)
	}
}

// reduceF16Vec is GGML_F32x8_REDUCE: accumulators 0+2 and 1+3, then
// those two, then the upper half onto the lower and two horizontal adds.
func reduceF16Vec(s *[4][8]float32) float32 {
	var x [8]float32
	for l := range 8 {
		x[l] = (s[0][l] + s[2][l]) + (s[1][l] + s[3][l])
	}
	t0, t1, t2, t3 := x[0]+x[4], x[1]+x[5], x[2]+x[6], x[3]+x[7]
	return (t0 + t1) + (t2 + t3)
}

// Expf is e^x in float32 computed as ggml's AVX2 ggml_v_expf computes each
// lane (softmax and SiLU use it there): a rounding-constant range reduction
// by ln 2 and a degree-5 polynomial, every step the same float32 operation
// (FMA where ggml fuses) so the results are bit-identical, not merely close.
func Expf(x float32) float32 {
	const (
		shift  float32 = 0x1.8p23
		log2e  float32 = 0x1.715476p+0
		ln2hi  float32 = 0x1.62e4p-1
		ln2lo  float32 = 0x1.7f7d1cp-20
		c1     float32 = 0x1.ffffecp-1
		c2     float32 = 0x1.fffdb6p-2
		c3     float32 = 0x1.555e66p-3
		c4     float32 = 0x1.573e2ep-5
		c5     float32 = 0x1.0e4020p-7
		oneBit uint32  = 0x3f800000
	)
	z := FMA32(x, log2e, shift)
	n := z - shift
	b := FMA32(-n, ln2lo, FMA32(-n, ln2hi, x))
	e := math.Float32bits(z) << 23
	k := math.Float32frombits(e + oneBit)
	u := b * b
	j := FMA32(FMA32(FMA32(c5, b, c4), u, FMA32(c3, b, c2)), u, c1*b)
	an := float32(math.Abs(float64(n)))
	if !(an > 126) {
		return FMA32(k, j, k)
	}
	var g uint32
	if n <= 0 {
		g = 0x82000000
	}
	s1 := math.Float32frombits(g + 0x7f000000)
	if an > 192 {
		return s1 * s1
	}
	s2 := math.Float32frombits(e - g)
	return FMA32(s2, j, s2) * s1
}

// expTab holds Expf's constants, each repeated for the 8 lanes of expAVX2:
// shift, log2e, ln2hi, ln2lo, c1..c5, one.
var expTab = func() (t [80]float32) {
	for i, c := range [10]float32{0x1.8p23, 0x1.715476p+0, 0x1.62e4p-1, 0x1.7f7d1cp-20,
		0x1.ffffecp-1, 0x1.fffdb6p-2, 0x1.555e66p-3, 0x1.573e2ep-5, 0x1.0e4020p-7, 1} {
		for l := range 8 {
			t[8*i+l] = c
		}
	}
	return t
}()

// ExpSub sets dst[i] = Expf(src[i]-s), or Expf(s-src[i]) when neg, eight
// at a time with ggml's AVX2 instruction sequence where the CPU has it (bit
// for bit Expf: the same operations). Blocks holding an argument beyond
// ±87, whose exponent needs ggml's rescaling branch, go element by element.
func ExpSub(dst, src []float32, s float32, neg bool) {
	n := len(src)
	dst = dst[:n]
	i := 0
	if useAVX2 {
		ng := 0
		if neg {
			ng = 1
		}
		for ; i+8 <= n; i += 8 {
			ok := true
			for _, v := range src[i : i+8] {
				x := v - s
				if neg {
					x = s - v
				}
				if !(x > -87 && x < 87) {
					ok = false
					break
				}
			}
			if ok {
				expAVX2(&dst[i], &src[i], s, ng, 8, &expTab)
				continue
			}
			expSubGeneric(dst[i:i+8], src[i:i+8], s, neg)
		}
	}
	expSubGeneric(dst[i:], src[i:], s, neg)
}

func expSubGeneric(dst, src []float32, s float32, neg bool) {
	for i, v := range src {
		if neg {
			dst[i] = Expf(s - v)
		} else {
			dst[i] = Expf(v - s)
		}
	}
}

// UsesAVX2 reports whether the kernels run in their AVX2 assembly, which
// reproduces the summation order of llama.cpp's AVX2 CPU backend; otherwise
// the portable Go kernels run.
func UsesAVX2() bool { return useAVX2 }
