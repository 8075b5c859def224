package deploy

import (
	"context"
	"fmt"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

// fieldManager owns what llmctl writes to the cluster.
const fieldManager = "llmctl"

// GPUOptions configure the node prerequisites.
type GPUOptions struct {
	// Image of the NVIDIA device plugin.
	Image string
	// OSReleasePath is read to detect WSL2 (tests point it at a fixture).
	OSReleasePath string
	// Node to label on WSL2; empty means the only node, or the one named
	// like this host.
	Node string
}

// GPUResult says what EnsureGPU changed.
type GPUResult struct {
	RuntimeClass string   `json:"runtimeClass"`
	DevicePlugin string   `json:"devicePlugin"`
	WSL2         bool     `json:"wsl2"`
	LabeledNodes []string `json:"labeledNodes,omitempty"`
	Changes      []string `json:"changes"`
}

// EnsureGPU makes a K3s node ready for GPU pods: the nvidia RuntimeClass,
// the NVIDIA device plugin DaemonSet running under that runtime class (the
// upstream chart leaves runtimeClassName empty, and then the plugin finds
// no NVML under K3s), and on WSL2 the nvidia.com/gpu.present node label.
// It is idempotent: a second call changes nothing.
func (d *Deployer) EnsureGPU(ctx context.Context, o GPUOptions) (*GPUResult, error) {
	if o.Image == "" {
		o.Image = facts.DevicePluginImage
	}
	if o.OSReleasePath == "" {
		o.OSReleasePath = facts.OSRelease
	}
	res := &GPUResult{RuntimeClass: facts.RuntimeClass, DevicePlugin: facts.DevicePluginNamespace + "/" + facts.DevicePluginName}

	rc := &nodev1.RuntimeClass{
		ObjectMeta: metav1.ObjectMeta{Name: facts.RuntimeClass, Labels: map[string]string{"app.kubernetes.io/managed-by": fieldManager}},
		Handler:    facts.RuntimeHandler,
	}
	if _, err := d.kube.NodeV1().RuntimeClasses().Create(ctx, rc, metav1.CreateOptions{FieldManager: fieldManager}); err == nil {
		res.Changes = append(res.Changes, "created RuntimeClass "+facts.RuntimeClass)
	} else if !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create RuntimeClass %s: %w", facts.RuntimeClass, err)
	}

	want := devicePlugin(o.Image)
	dsc := d.kube.AppsV1().DaemonSets(facts.DevicePluginNamespace)
	cur, err := dsc.Get(ctx, facts.DevicePluginName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := dsc.Create(ctx, want, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
			return nil, fmt.Errorf("create device plugin: %w", err)
		}
		res.Changes = append(res.Changes, "created DaemonSet "+res.DevicePlugin)
	case err != nil:
		return nil, fmt.Errorf("read device plugin: %w", err)
	default:
		spec := cur.Spec.Template.Spec
		rcName := ptr.Deref(spec.RuntimeClassName, "")
		if rcName != facts.RuntimeClass || len(spec.Containers) == 0 || spec.Containers[0].Image != o.Image {
			cur.Spec.Template = want.Spec.Template
			if _, err := dsc.Update(ctx, cur, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
				return nil, fmt.Errorf("update device plugin: %w", err)
			}
			res.Changes = append(res.Changes, "updated DaemonSet "+res.DevicePlugin+" (runtimeClassName nvidia, image "+o.Image+")")
		}
	}

	res.WSL2 = isWSL2(o.OSReleasePath)
	if res.WSL2 {
		nodes, err := d.nodesToLabel(ctx, o.Node)
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			if n.Labels[facts.GPUPresentLabel] == "true" {
				continue
			}
			patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"true"}}}`, facts.GPUPresentLabel)
			if _, err := d.kube.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
				return nil, fmt.Errorf("label node %s: %w", n.Name, err)
			}
			res.LabeledNodes = append(res.LabeledNodes, n.Name)
			res.Changes = append(res.Changes, "labeled node "+n.Name+" "+facts.GPUPresentLabel+"=true")
		}
	}
	return res, nil
}

// nodesToLabel picks the WSL2 node: the named one, the one named like this
// host, or the only node. Several nodes and no match is an error rather than
// a guess.
func (d *Deployer) nodesToLabel(ctx context.Context, name string) ([]corev1.Node, error) {
	l, err := d.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	if name == "" {
		if len(l.Items) == 1 {
			return l.Items, nil
		}
		name, _ = os.Hostname()
	}
	for _, n := range l.Items {
		if n.Name == name {
			return []corev1.Node{n}, nil
		}
	}
	return nil, fmt.Errorf("WSL2: cannot tell which of %d nodes is this one; name it with --node", len(l.Items))
}

// isWSL2 reads the kernel release at path (facts.DetectWSL).
func isWSL2(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && facts.DetectWSL(string(b)) == facts.WSL2
}

// devicePlugin is the NVIDIA device plugin DaemonSet, pinned to the nvidia
// runtime class so the container sees the driver's NVML.
func devicePlugin(image string) *appsv1.DaemonSet {
	labels := map[string]string{"app.kubernetes.io/name": facts.DevicePluginName, "app.kubernetes.io/managed-by": fieldManager}
	sel := map[string]string{"app.kubernetes.io/name": facts.DevicePluginName}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: facts.DevicePluginName, Namespace: facts.DevicePluginNamespace, Labels: labels},
		Spec: appsv1.DaemonSetSpec{
			Selector:       &metav1.LabelSelector{MatchLabels: sel},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RuntimeClassName:  ptr.To(facts.RuntimeClass),
					PriorityClassName: "system-node-critical",
					Tolerations: []corev1.Toleration{
						{Key: string(facts.GPUResource), Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
						{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
					},
					Containers: []corev1.Container{{
						Name:  facts.DevicePluginName,
						Image: image,
						Env: []corev1.EnvVar{
							// Keep running (and say so in the log) on a node without a GPU.
							{Name: "FAIL_ON_INIT_ERROR", Value: "false"},
							{Name: "DEVICE_LIST_STRATEGY", Value: "envvar"},
						},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "device-plugin", MountPath: facts.DevicePluginSocketDir}},
					}},
					Volumes: []corev1.Volume{{
						Name:         "device-plugin",
						VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: facts.DevicePluginSocketDir}},
					}},
				},
			},
		},
	}
}
