// Package accuracy holds only the end-to-end accuracy test of the rate
// limiter: several `llmctl serve` processes sharing one real Redis, hammered
// concurrently (accuracy_test.go). It is a package of its own so that the
// limiter's unit tests do not build the binary.
package accuracy
