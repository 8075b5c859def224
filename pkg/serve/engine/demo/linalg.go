package demo

// Plain-Go vector kernels for training, unrolled by four: the trainer
// spends nearly all its time in the output layer's dot products and axpys.

func dotGo(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpyGo adds a·x to y.
func axpyGo(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	i := 0
	for ; i+4 <= len(y); i += 4 {
		y[i] += a * x[i]
		y[i+1] += a * x[i+1]
		y[i+2] += a * x[i+2]
		y[i+3] += a * x[i+3]
	}
	for ; i < len(y); i++ {
		y[i] += a * x[i]
	}
}

// matvec sets out = W·x for W of len(out) rows.
func matvec(out, w, x []float32) {
	n := len(x)
	for r := range out {
		out[r] = dot(w[r*n:(r+1)*n], x)
	}
}

// backMatvec accumulates the gradients of out = W·x: dx += Wᵀ·dout and
// dW += dout ⊗ x.
func backMatvec(dx, dw, w, x, dout []float32) {
	n := len(x)
	for r, g := range dout {
		if g == 0 {
			continue
		}
		axpy(dx, g, w[r*n:(r+1)*n])
		axpy(dw[r*n:(r+1)*n], g, x)
	}
}
