package demo

import "golang.org/x/sys/cpu"

// The trainer's time goes to dot products and axpys of embedding-width
// vectors; AVX2/FMA makes them several times faster than the Go loops.

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func axpyAVX2(y, x *float32, n int, a float32)

var haveAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

func dot(a, b []float32) float32 {
	n := len(a) &^ 7
	if !haveAVX2 || n == 0 {
		return dotGo(a, b)
	}
	b = b[:len(a)]
	s := dotAVX2(&a[0], &b[0], n)
	if n < len(a) {
		s += dotGo(a[n:], b[n:])
	}
	return s
}

func axpy(y []float32, a float32, x []float32) {
	n := len(y) &^ 7
	if !haveAVX2 || n == 0 {
		axpyGo(y, a, x)
		return
	}
	x = x[:len(y)]
	axpyAVX2(&y[0], &x[0], n, a)
	if n < len(y) {
		axpyGo(y[n:], a, x[n:])
	}
}
