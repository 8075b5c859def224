package preflight_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/llmctl/llmctl/internal/kubetest"
	"github.com/llmctl/llmctl/pkg/preflight"
)

// doctor's cluster.workloads on pods that really fail on a real node (no
// status written by the test): a command exiting 1, a container over its
// memory limit, an image no registry has, and a pod asking for the nvidia
// runtime class the node's containerd lacks. Each is named with its remedy.
// Last in the package (file order): the real node stays up afterwards and
// the other cluster tests count the KWOK node alone.
func TestWorkloadsOnRealNode(t *testing.T) {
	c := kubetest.Start(t)
	n := c.RealNode(t)
	kc := c.Client(t)
	ctx := context.Background()
	ns := "llmctl-real"
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The RuntimeClass exists (as `llmctl up --gpu` makes it); the node's
	// containerd has no such runtime.
	_, err := kc.NodeV1().RuntimeClasses().Create(ctx, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "nvidia"}, Handler: "nvidia"}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err == nil {
		t.Cleanup(func() {
			_ = kc.NodeV1().RuntimeClasses().Delete(context.Background(), "nvidia", metav1.DeleteOptions{})
		})
	}

	pod := func(name, image string, cmd []string, mem string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image, Command: cmd}}}}
		if image == kubetest.PauseImage {
			p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
		}
		if mem != "" {
			q := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(mem)}
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: q, Limits: q}
		}
		n.Schedule(&p.Spec)
		return p
	}
	nvidia := pod("gpu-backend", kubetest.PauseImage, nil, "")
	nvidia.Spec.RuntimeClassName = ptr.To("nvidia")
	for _, p := range []*corev1.Pod{
		pod("crash", kubetest.PauseImage, []string{"/pause", "exit", "1"}, ""),
		pod("oom", kubetest.PauseImage, []string{"/pause", "alloc", "64"}, "16Mi"),
		pod("pull", "llmctl.invalid/llmctl:0", nil, ""),
		nvidia,
	} {
		createPod(t, kc, p)
	}

	env := clusterEnv(t, "healthy-k3s", kc, ns)
	wants := []string{
		// In back-off (CrashLoopBackOff) or just exited (terminated, before
		// the kubelet's next sync): both name the container and its exit.
		"pod crash: container c ", "last termination: reason Error, exit code 1",
		"pod oom: container c", "OOMKilled", "raise its memory limit",
		"pod pull: cannot pull image llmctl.invalid/llmctl:0",
		"pod gpu-backend: the node's containerd has no nvidia runtime",
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r := runOnly(t, env, "cluster.workloads")["cluster.workloads"]
		all := r.Message + "\n" + strings.Join(r.Evidence, "\n") + "\n" + r.Remedy
		var missing []string
		for _, w := range wants {
			if !strings.Contains(all, w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 && r.Verdict == preflight.Fail {
			t.Logf("doctor on the real node's failing pods:\n%s", all)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("workloads report (%s) lacks %q:\n%s", r.Verdict, missing, all)
		}
		time.Sleep(time.Second)
	}
}
