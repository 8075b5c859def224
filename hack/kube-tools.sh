#!/usr/bin/env bash
# kube-tools.sh builds the test control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, KWOK) from the Go module proxy into
# a cache directory, once. Later runs check a stamp and return in milliseconds.
#
# Usage: hack/kube-tools.sh            build if needed, print the directory
# Env:   LLMCTL_KUBE_TOOLS             override the output directory
set -euo pipefail

hack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$hack_dir/kube-version.sh"
out="${LLMCTL_KUBE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/llmctl/kube-${KUBE_VERSION}}"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

# The stamp is the hash of what decides the binaries: the module graph, the version and this script.
stamp=$(cat "$hack_dir/go.mod" "$hack_dir/go.sum" "$hack_dir/etcd/main.go" "$hack_dir/kube-version.sh" "$0" | sha256sum | cut -d' ' -f1)
ok=1
for b in "${bins[@]}"; do [ -x "$out/$b" ] || ok=0; done
[ -d "$out/kwok-stages" ] || ok=0
if [ "$ok" = 1 ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$out"
  exit 0
fi

echo "building kube test tools ${KUBE_VERSION} into $out (cold: ~10 min on 2 cores)" >&2
mkdir -p "$out"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cd "$hack_dir"
export CGO_ENABLED=0
nice -n 10 go build -trimpath -ldflags "$kube_ldflags" -o "$tmp/" \
  ./etcd \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  sigs.k8s.io/kwok/cmd/kwok
# KWOK's own stage definitions (node ready + lease heartbeat, pod ready,
# complete, delete), read from the module cache: kwok needs them via --config.
kwok_dir=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
mkdir -p "$tmp/kwok-stages"
for s in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
         pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
  cp "$kwok_dir/kustomize/stage/$s.yaml" "$tmp/kwok-stages/"
done
chmod -R u+w "$tmp/kwok-stages"
rm -rf "$out/kwok-stages"
mv "$tmp/kwok-stages" "$out/kwok-stages"
for b in "${bins[@]}"; do mv -f "$tmp/$b" "$out/$b"; done
echo "$stamp" > "$out/.stamp"
echo "$out"
