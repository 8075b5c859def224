package quant

import (
	"math/rand/v2"
	"testing"
)

// TestPackedQ4_0Agrees checks the packed eight-row Q4_0 kernels (assembly
// where available, and the portable twin) against DotQ4_0 on the unpacked
// rows: every result must be bit-identical, for one and for many tokens.
func TestPackedQ4_0Agrees(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 12 {
		rows, n := 8*(1+trial%3), QK4_0*(1+trial*5%13)
		nb := n / QK4_0
		w := randBytes(r, rows*nb*BlockQ4_0)
		setScales(w, BlockQ4_0, 0, r)
		packed := PackQ4_0x8(w, rows, n)
		if len(packed) != len(w) {
			t.Fatalf("packed %d bytes from %d", len(packed), len(w))
		}
		tokens := 1 + trial%6
		a8 := make([][]byte, tokens)
		ax := make([][]byte, tokens)
		for k := range a8 {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64()) * float32(k+1)
			}
			a8[k] = make([]byte, nb*BlockQ8_0)
			QuantizeQ8_0(a8[k], x)
			ax[k] = make([]byte, nb*BlockQ8_0x)
			PrepQ8_0x(ax[k], a8[k])
		}
		out := make([][]float32, tokens)
		for k := range out {
			out[k] = make([]float32, rows)
		}
		scratch := make([]float32, 8*tokens)
		ptrs := make([]*byte, tokens)
		for g := 0; g < rows/8; g++ {
			GemmQ4_0x8(packed[g*nb*BlockQ4_0x8:], nb, ax, out, 8*g, scratch, ptrs)
		}
		for k := range tokens {
			for row := range rows {
				want := dotQ4_0Generic(w[row*nb*BlockQ4_0:], a8[k], n)
				if got := out[k][row]; got != want {
					t.Fatalf("trial %d: token %d of %d, row %d: packed %v, one-row %v", trial, k, tokens, row, got, want)
				}
			}
			var acc [8]float32
			for g := 0; g < rows/8; g++ {
				gemmQ4_0x8Generic(packed[g*nb*BlockQ4_0x8:], nb, ax[k], &acc)
				for lane, row := range q4x8Lane {
					if want := out[k][8*g+row]; acc[lane] != want {
						t.Fatalf("trial %d: portable packed kernel row %d: %v, want %v", trial, 8*g+row, acc[lane], want)
					}
				}
			}
		}
	}
}

// TestRowsKernelsAgree checks the row-range kernels against the one-row
// portable kernels, bit for bit.
func TestRowsKernelsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := range 8 {
		rows, n := 1+trial*3, QK_K*(1+trial%3)
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		a8 := make([]byte, n/32*BlockQ8_0)
		QuantizeQ8_0(a8, x)
		ak := make([]Q8K, n/QK_K)
		QuantizeQ8_K(ak, x)
		out := make([]float32, rows)

		w8 := randBytes(r, rows*n/32*BlockQ8_0)
		setScales(w8, BlockQ8_0, 0, r)
		DotQ8_0Rows(w8, a8, n, out)
		for i, got := range out {
			if want := dotQ8_0Generic(w8[i*n/32*BlockQ8_0:], a8, n); got != want {
				t.Fatalf("Q8_0 row %d of %d: %v, want %v", i, rows, got, want)
			}
		}
		wk := randBytes(r, rows*n/QK_K*BlockQ4_K)
		setScales(wk, BlockQ4_K, 0, r)
		setScales(wk, BlockQ4_K, 2, r)
		DotQ4_KRows(wk, ak, n, out)
		for i, got := range out {
			if want := dotQ4_KGeneric(wk[i*n/QK_K*BlockQ4_K:], ak, n); got != want {
				t.Fatalf("Q4_K row %d of %d: %v, want %v", i, rows, got, want)
			}
		}
		w6 := randBytes(r, rows*n/QK_K*BlockQ6_K)
		setScales(w6, BlockQ6_K, 208, r)
		DotQ6_KRows(w6, ak, n, out)
		for i, got := range out {
			if want := dotQ6_KGeneric(w6[i*n/QK_K*BlockQ6_K:], ak, n); got != want {
				t.Fatalf("Q6_K row %d of %d: %v, want %v", i, rows, got, want)
			}
		}
	}
}

// TestPackedQ4_KAgrees checks the packed eight-row Q4_K kernels, in both
// orders, against DotQ4_K and DotQ4_KTile on the unpacked rows, bit for bit.
func TestPackedQ4_KAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for trial := range 10 {
		rows, n := 8*(1+trial%3), QK_K*(1+trial%4)
		nb := n / QK_K
		w := randBytes(r, rows*nb*BlockQ4_K)
		setScales(w, BlockQ4_K, 0, r)
		setScales(w, BlockQ4_K, 2, r)
		packed := PackQ4_Kx8(w, rows, n)
		tokens := 1 + trial%6
		a := make([][]Q8K, tokens)
		for k := range a {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64()) * float32(k+1)
			}
			a[k] = make([]Q8K, nb)
			QuantizeQ8_K(a[k], x)
		}
		for _, tile := range []bool{false, true} {
			out := make([][]float32, tokens)
			for k := range out {
				out[k] = make([]float32, rows)
			}
			scratch := make([]float32, 16*tokens)
			ptrs := make([]*Q8K, tokens)
			for g := 0; g < rows/8; g++ {
				GemmQ4_Kx8(packed[g*nb*BlockQ4_Kx8:], nb, a, tile, out, 8*g, scratch, ptrs)
			}
			for k := range tokens {
				for row := range rows {
					wr := w[row*nb*BlockQ4_K:]
					want := dotQ4_KGeneric(wr, a[k], n)
					if tile {
						want = dotQ4_KTileGeneric(wr, a[k], n)
					}
					if got := out[k][row]; got != want {
						t.Fatalf("trial %d tile=%v: token %d of %d, row %d: packed %v, one-row %v", trial, tile, k, tokens, row, got, want)
					}
				}
				var acc [8]float32
				for g := 0; g < rows/8; g++ {
					gemmQ4_Kx8Generic(packed[g*nb*BlockQ4_Kx8:], nb, a[k], tile, &acc)
					for lane, row := range q4x8Lane {
						if want := out[k][8*g+row]; acc[lane] != want {
							t.Fatalf("trial %d tile=%v: portable packed row %d: %v, want %v", trial, tile, 8*g+row, acc[lane], want)
						}
					}
				}
			}
		}
	}
}

// TestQ8_0TilesAgree checks the many-token Q8_0 tile kernel against the
// one-row portable kernel, bit for bit, storing into the right rows.
func TestQ8_0TilesAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for trial := range 6 {
		n := QK8_0 * (1 + trial*5%17)
		nb := n / QK8_0
		rows := 6
		w := randBytes(r, rows*nb*BlockQ8_0)
		setScales(w, BlockQ8_0, 0, r)
		tokens := 4 * (1 + trial%3)
		a := make([][]byte, tokens+trial%4) // extra tokens are not the kernel's
		out := make([][]float32, len(a))
		for k := range a {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			a[k] = make([]byte, nb*BlockQ8_0)
			QuantizeQ8_0(a[k], x)
			out[k] = make([]float32, rows)
		}
		b := NewQ8_0Tiles(a, out, n, rows)
		rb := nb * BlockQ8_0
		for row := 0; row+2 <= rows; row += 2 {
			b.DotTiles(w[row*rb:(row+2)*rb], rb, row, n)
		}
		for k := range a {
			for row := range rows {
				want := dotQ8_0Generic(w[row*rb:], a[k], n)
				if k >= tokens {
					want = 0
				}
				if out[k][row] != want {
					t.Fatalf("trial %d token %d row %d: %v, want %v", trial, k, row, out[k][row], want)
				}
			}
		}
	}
}
