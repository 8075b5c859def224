// Package nvmlprobe opens the system's NVML for `llmctl doctor` (and any
// other command that wants GPU readings) without making every build depend
// on it.
//
// go-nvml leaves each nvml* C symbol undefined at link time and relies on
// lazy binding once libnvidia-ml.so.1 is dlopen'ed. llmctl also links the
// Go plugin package (through Helm and client-go), which makes the Go linker
// request immediate binding (BIND_NOW): such a binary dies at exec with
// "symbol lookup error: undefined symbol: nvml..." on every machine, GPU or
// not. So the real probe is opt-in: build with `-tags nvml` (needs cgo) and
// `-ldflags=-extldflags=-Wl,-z,lazy`, as the release build does. Any other
// build gets a stub that says NVML is not built in, and doctor reports that.
package nvmlprobe
