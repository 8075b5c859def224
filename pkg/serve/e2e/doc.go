// Package e2e holds the end-to-end tests of `llmctl serve`: the built binary
// as a subprocess, the official openai-go client in front of it and the
// upstream test double behind it. It has no non-test code.
package e2e
