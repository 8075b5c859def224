package upstreamdouble

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// PostChat sends one chat completion to base (the double, or a gateway in
// front of it) with key as the bearer token when set, reads the whole
// answer and returns its headers. Any status but 200 is an error. The
// benchmarks share it so each times the same client work on every path.
func PostChat(client *http.Client, base, key string, body []byte) (http.Header, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.Header, fmt.Errorf("%s: status %d", base, resp.StatusCode)
	}
	return resp.Header, err
}
