package grammar

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkMask times one masking step over a 32,000-token synthetic
// vocabulary at a few points of an answer: inside a string, at an array's
// start, after a number; and the same string point of an anyOf whose two
// object alternatives share it, where two runs are alive
// (docs/benchmarks.md, "Grammar anyOf").
func BenchmarkMask(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	alpha := []byte(`abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789{}[]":,.-`)
	pieces := make([][]byte, 32000)
	for i := range pieces {
		p := make([]byte, 1+rng.IntN(6))
		for j := range p {
			p[j] = alpha[rng.IntN(len(alpha))]
		}
		pieces[i] = p
	}
	v := NewVocab(pieces, func(id int32) bool { return id == 0 })
	plain := `{"type":"object","properties":{"name":{"type":"string"},"tags":{"type":"array","items":{"type":"string"}},"n":{"type":"integer"}},"required":["name","tags","n"]}`
	anyOf := `{"anyOf":[{"type":"object","properties":{"name":{"type":"string"},"b":{"type":"integer"}},"required":["name","b"]},` +
		`{"type":"object","properties":{"name":{"type":"string"},"c":{"type":"boolean"}},"required":["name","c"]}]}`
	logits := make([]float32, len(pieces))
	for _, c := range []struct{ name, schema, at string }{
		{"string", plain, `{"name":"ab`},
		{"array", plain, `{"name":"ab","tags":[`},
		{"number", plain, `{"name":"ab","tags":["x"],"n":1`},
		{"anyOf-string", anyOf, `{"name":"ab`},
	} {
		g, err := CompileSchema([]byte(c.schema))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			s := g.Start()
			if !s.Feed([]byte(c.at)) {
				b.Fatal("prefix refused")
			}
			for b.Loop() {
				clear(logits)
				s.Mask(logits, v, 100)
			}
		})
	}
}
