# kube-version.sh is sourced by kube-tools.sh and kube-node.sh: the one
# Kubernetes version they build, and the version flags without which /version
# reports v0.0.0-master and clients (and the kubelet's node status) cannot
# parse it.
KUBE_VERSION=v1.37.2
cb=k8s.io/component-base/version
kube_ldflags="-s -w -X $cb.gitVersion=${KUBE_VERSION} -X $cb.gitMajor=1 -X $cb.gitMinor=37"
kube_ldflags="$kube_ldflags -X $cb.gitTreeState=clean -X $cb.gitCommit=0000000000000000000000000000000000000000"
kube_ldflags="$kube_ldflags -X $cb.buildDate=2026-01-01T00:00:00Z"
unset cb
