package facts

import corev1 "k8s.io/api/core/v1"

// The names the NVIDIA pieces use on a cluster.
const (
	// RuntimeClass is the RuntimeClass GPU pods ask for; on K3s the
	// default runtime is runc, which gives a container no driver.
	RuntimeClass = "nvidia"
	// RuntimeHandler is the containerd runtime it maps to (K3s registers
	// it when it finds nvidia-container-runtime at start).
	RuntimeHandler = "nvidia"
	// GPUResource is what the device plugin advertises and GPU pods request.
	GPUResource corev1.ResourceName = "nvidia.com/gpu"
	// GPUPresentLabel is the node label the device plugin's affinity wants;
	// node feature discovery sets it, except on WSL2 (no PCI device).
	GPUPresentLabel = "nvidia.com/gpu.present"
	// DevicePluginName names the device plugin DaemonSet and its label.
	DevicePluginName = "nvidia-device-plugin"
	// DevicePluginNamespace is where `llmctl up --gpu` installs it.
	DevicePluginNamespace = "kube-system"
	// DevicePluginImage is the plugin `llmctl up --gpu` installs.
	DevicePluginImage = "nvcr.io/nvidia/k8s-device-plugin:v0.17.2"
	// DevicePluginSocketDir is the kubelet's device plugin directory.
	DevicePluginSocketDir = "/var/lib/kubelet/device-plugins"
)
