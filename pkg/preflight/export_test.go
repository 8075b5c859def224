package preflight

import "testing"

// Test hooks for the external test package (fixtures with go-nvml mocks
// live there because nvmlprobe imports this package).

// WriteTestGGUF writes a Llama-8B-shaped GGUF header into dir and returns its path.
func WriteTestGGUF(t testing.TB, dir string) string { return writeGGUF(t, dir, llama8B()) }
