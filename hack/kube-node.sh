#!/usr/bin/env bash
# kube-node.sh builds what the test harness's real node needs beside
# containerd, runc and the CNI plugins (Debian packages): the kubelet, from the
# same module graph and version as the control plane (hack/kube-tools.sh), and
# the pod sandbox's pause binary. Once, into a cache directory; later runs
# check a stamp and return in milliseconds. Separate from kube-tools.sh so the
# control plane's cache is not rebuilt when this changes.
#
# Usage: hack/kube-node.sh             build if needed, print the directory
# Env:   LLMCTL_KUBE_NODE_TOOLS        override the output directory
set -euo pipefail

hack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$hack_dir/kube-version.sh"
out="${LLMCTL_KUBE_NODE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/llmctl/kube-node-${KUBE_VERSION}}"
bins=(kubelet pause)

stamp=$(cat "$hack_dir/go.mod" "$hack_dir/go.sum" "$hack_dir/pause/main.go" "$hack_dir/kube-version.sh" "$0" | sha256sum | cut -d' ' -f1)
ok=1
for b in "${bins[@]}"; do [ -x "$out/$b" ] || ok=0; done
if [ "$ok" = 1 ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$out"
  exit 0
fi

echo "building the test node's kubelet ${KUBE_VERSION} into $out (cold: ~7 min on 2 cores)" >&2
mkdir -p "$out"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cd "$hack_dir"
export CGO_ENABLED=0
nice -n 10 go build -trimpath -ldflags "$kube_ldflags" -o "$tmp/" k8s.io/kubernetes/cmd/kubelet ./pause
for b in "${bins[@]}"; do mv -f "$tmp/$b" "$out/$b"; done
echo "$stamp" > "$out/.stamp"
echo "$out"
