package engine

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzLogitBias: any logit_bias object is accepted within the vocabulary
// and bounds, or refused as a 400 on logit_bias.
func FuzzLogitBias(f *testing.F) {
	f.Add(`{"5":-100,"4095":100}`)
	f.Add(`{"-1":1}`)
	f.Add(`{"12":1e9}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var m map[string]float64
		if json.Unmarshal([]byte(raw), &m) != nil {
			return
		}
		out, err := logitBias(m, 4096)
		var re *RequestError
		if err != nil {
			if !errors.As(err, &re) || re.Param != "logit_bias" {
				t.Fatalf("error %v", err)
			}
			return
		}
		for id, v := range out {
			if id < 0 || id >= 4096 || v < -100 || v > 100 {
				t.Fatalf("accepted %d: %v", id, v)
			}
		}
	})
}
