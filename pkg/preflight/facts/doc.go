// Package facts is llmctl's one home for what it knows about a K3s node with
// an NVIDIA GPU, possibly under WSL2: where K3s keeps its files, the order a
// kubeconfig is looked up in, how WSL1 and WSL2 are told apart, the names the
// NVIDIA runtime class, device plugin and labels use, and what a failing pod
// means and how to fix it. doctor (pkg/preflight), up/down (pkg/deploy) and
// top import it instead of keeping copies that drift apart.
package facts
