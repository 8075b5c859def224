//go:build race

package engine_test

// raceEnabled: under the race detector (make test runs this package twice)
// the many-seed tests take a few seeds; the plain run covers them all.
const raceEnabled = true
