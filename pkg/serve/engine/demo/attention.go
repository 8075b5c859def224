package demo

import (
	"math"
)

// The attention of the demo model is set, not learned. Every query and key
// reads only the first embedding dimension, which every token embedding
// holds at 1 (and whose rows are kept at unit RMS, so after the RMS norm it
// is the same number for every token). A key is then the same vector at
// every position and RoPE alone decides the scores: head h with offset K
// gets the query pair i = A·(cos Kθᵢ, −sin Kθᵢ) against the key pair (1, 0),
// so its score for a key Δ places back is A·Σᵢ cos((Δ−K)θᵢ)/√d, largest at
// Δ = K. A is chosen so that the next best score is at least gapLogits
// lower over the whole context: the softmax then puts all weight on the
// token K back. A head with a zero query scores every position 0 and
// averages them all.

// gapLogits is the least score margin of an offset head's chosen position
// over any other: e^-30 of leftover weight is below F16's resolution.
const gapLogits = 30

// ropeThetas returns θᵢ for the pairs of a head of dims dimensions as the
// engine (and ggml) computes them: repeated float32 multiplication.
func ropeThetas(dims int, base float32) []float64 {
	scale := float32(math.Pow(float64(base), -2.0/float64(dims)))
	th := make([]float64, dims/2)
	t := float32(1)
	for i := range th {
		th[i] = float64(t)
		t *= scale
	}
	return th
}

// profile is Σᵢ cos((Δ−K)θᵢ) for Δ in [0, n).
func profile(thetas []float64, k, n int) []float64 {
	p := make([]float64, n)
	for d := range p {
		for _, th := range thetas {
			p[d] += math.Cos(float64(d-k) * th)
		}
	}
	return p
}

// offsetAmplitude returns A for an offset-k head: the smallest amplitude
// whose score margin over [0, context) is gapLogits, and an error when the
// RoPE frequencies cannot tell position k apart from another.
func offsetAmplitude(thetas []float64, k, context, headDim int) (float64, bool) {
	p := profile(thetas, k, context)
	gap := math.Inf(1)
	for d, v := range p {
		if d != k {
			gap = min(gap, p[k]-v)
		}
	}
	if gap <= 1e-3 {
		return 0, false
	}
	return gapLogits * math.Sqrt(float64(headDim)) / gap, true
}

// weight is one key position's share of a query's attention.
type weight struct {
	s int
	w float32
}

// attnWeights returns, for every query position t < n, the attention
// weights of a head: offset k > 0 with amplitude amp, or the average
// (k == 0). n00 is the normalized first embedding dimension. Shares
// under 1e-7 (which the engine's F16 rounding zeroes) are dropped.
func attnWeights(thetas []float64, k int, amp float64, headDim, n int, n00 float64) [][]weight {
	out := make([][]weight, n)
	for t := range n {
		if k == 0 {
			for s := 0; s <= t; s++ {
				out[t] = append(out[t], weight{s, float32(1 / float64(t+1))})
			}
			continue
		}
		sc := make([]float64, t+1)
		mx := math.Inf(-1)
		for s := 0; s <= t; s++ {
			var v float64
			for _, th := range thetas {
				v += math.Cos(float64(t-s-k) * th)
			}
			sc[s] = v * amp * n00 * n00 / math.Sqrt(float64(headDim))
			mx = max(mx, sc[s])
		}
		var sum float64
		for s := range sc {
			sc[s] = math.Exp(sc[s] - mx)
			sum += sc[s]
		}
		for s, v := range sc {
			if w := v / sum; w >= 1e-7 {
				out[t] = append(out[t], weight{s, float32(w)})
			}
		}
	}
	return out
}
