package kubetest_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/llmctl/llmctl/internal/kubetest"
	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

// The real node runs a pod under the gateway chart's restrictions (uid
// 65532, read-only root, no capabilities, RuntimeDefault seccomp) with
// Guaranteed resources (the kubelet asks for oom_score_adj -997: the path
// that broke every sandbox before containerd's restrict_oom_score_adj), and
// a pod whose image no registry has fails as a real ImagePullBackOff.
func TestRealNodeRunsPods(t *testing.T) {
	c := kubetest.Start(t)
	n := c.RealNode(t)
	t.Logf("real node Ready %s after containerd started", n.Startup.Round(time.Millisecond))
	cs := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("16Mi")}
	runs := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "real-runs", Namespace: "default"},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{
				Name: "c", Image: kubetest.PauseImage, ImagePullPolicy: corev1.PullNever,
				Resources: corev1.ResourceRequirements{Requests: res, Limits: res},
				SecurityContext: &corev1.SecurityContext{
					ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
	n.Schedule(&runs.Spec)
	missing := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "real-missing-image", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "llmctl.invalid/no-such-image:1",
		}}},
	}
	n.Schedule(&missing.Spec)
	for _, p := range []*corev1.Pod{runs, missing} {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	for {
		p, err := cs.CoreV1().Pods("default").Get(ctx, runs.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, bad := facts.DiagnosePod(p, nil); !bad {
			if got := p.Status.ContainerStatuses[0].ContainerID; !strings.HasPrefix(got, "containerd://") {
				t.Fatalf("container ID %q, want one from containerd", got)
			}
			if ip := net.ParseIP(p.Status.PodIP); ip == nil || !n.Subnet.Contains(ip) {
				t.Fatalf("pod IP %q not in the node's subnet %s", p.Status.PodIP, n.Subnet)
			}
			break
		}
		if ctx.Err() != nil {
			pr, _ := facts.DiagnosePod(p, nil)
			t.Fatalf("pod not Running and Ready: %s %v", pr, pr.Evidence)
		}
		time.Sleep(200 * time.Millisecond)
	}

	for {
		p, err := cs.CoreV1().Pods("default").Get(ctx, missing.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pr, bad := facts.DiagnosePod(p, nil)
		if bad && strings.Contains(pr.Summary, "cannot pull image llmctl.invalid/no-such-image:1") {
			t.Logf("diagnosed: %s (%s)", pr, strings.Join(pr.Evidence, "; "))
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no image-pull diagnosis; last: %s %v", pr, pr.Evidence)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
