package serve

import (
	"testing"
	"time"
)

// BenchmarkDecodeAndRewrite is the per-request JSON work of the gateway:
// validate the client body and re-encode it for the backend. It runs at
// least 20 000 iterations so `make bench` (-benchtime 1x) still measures.
func BenchmarkDecodeAndRewrite(b *testing.B) {
	body := []byte(`{"model":"double-model","temperature":0.7,"max_tokens":256,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"benchmark prompt with a few more words in it tokens=16"}]}`)
	n := max(b.N, 20000)
	b.ReportAllocs()
	start := time.Now()
	for range n {
		cr, aerr := decodeRequest(EndpointChat, body)
		if aerr != nil {
			b.Fatal(aerr)
		}
		if _, err := cr.upstreamBody("backend-model"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n), "ns/request")
}
