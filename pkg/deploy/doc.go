// Package deploy is `llmctl up` and `llmctl down`: the embedded gateway chart
// installed or upgraded with the Helm SDK as an ordinary Helm release, a
// rollout watcher that explains a stuck rollout, and the node prerequisites
// for GPU pods under K3s (RuntimeClass, NVIDIA device plugin, WSL2 label).
package deploy
