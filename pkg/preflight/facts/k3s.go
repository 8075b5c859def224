package facts

// Where K3s keeps its files. K3s runs its own containerd and never reads
// /etc/containerd/config.toml: the classic trap doctor's runtime checks
// explain.
const (
	// K3sKubeconfig is K3s's admin kubeconfig (mode 0600 by default).
	K3sKubeconfig = "/etc/rancher/k3s/k3s.yaml"
	// K3sConfigDir holds the kubeconfig and config.yaml.
	K3sConfigDir = "/etc/rancher/k3s"
	// K3sDataDir is K3s's state; it exists once K3s has run.
	K3sDataDir = "/var/lib/rancher/k3s"
	// K3sContainerdDir holds the containerd config K3s generates, and the
	// config.toml.tmpl a user may put beside it.
	K3sContainerdDir = K3sDataDir + "/agent/etc/containerd"
	// K3sContainerdConfig is the generated config (rewritten at each start).
	K3sContainerdConfig = K3sContainerdDir + "/config.toml"
	// SystemContainerdConfig is the distro containerd's config, which K3s ignores.
	SystemContainerdConfig = "/etc/containerd/config.toml"
	// K3sContainerdSocket is K3s's own containerd's socket: its CRI endpoint.
	K3sContainerdSocket = "/run/k3s/containerd/containerd.sock"
	// SystemContainerdSocket is the distro containerd's socket.
	SystemContainerdSocket = "/run/containerd/containerd.sock"
)

// ContainerdSockets are the CRI sockets doctor tries, K3s's first: where
// both run, the kubelet K3s starts talks to its own.
func ContainerdSockets() []string {
	return []string{K3sContainerdSocket, SystemContainerdSocket}
}
