package serve

import "testing"

// BenchmarkDecodeAndRewrite is the per-request JSON work of the gateway:
// validate the client body and re-encode it for the backend.
func BenchmarkDecodeAndRewrite(b *testing.B) {
	body := []byte(`{"model":"double-model","temperature":0.7,"max_tokens":256,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"benchmark prompt with a few more words in it tokens=16"}]}`)
	b.ReportAllocs()
	for b.Loop() {
		cr, aerr := decodeRequest(EndpointChat, body)
		if aerr != nil {
			b.Fatal(aerr)
		}
		if _, err := cr.upstreamBody("backend-model"); err != nil {
			b.Fatal(err)
		}
	}
}
