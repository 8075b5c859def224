package kubetest_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/llmctl/llmctl/internal/kubetest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// gpuPod asks for n GPUs.
func gpuPod(name string, n int64) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "c",
			Image: "example.invalid/gpu:1",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
				kubetest.GPUResource: *resource.NewQuantity(n, resource.DecimalSI),
			}},
		}}},
	}
}

// The fake node runs a pod that fits and the scheduler refuses one that does not.
func TestControlPlaneSchedulesGPUs(t *testing.T) {
	c := kubetest.Start(t)
	t.Logf("control plane started in %s", c.Startup.Round(time.Millisecond))
	cs := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != kubetest.Version {
		t.Fatalf("server version %q, want %q", v.GitVersion, kubetest.Version)
	}
	node, err := cs.CoreV1().Nodes().Get(ctx, c.Node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := node.Status.Allocatable[kubetest.GPUResource]; got.Value() != kubetest.NodeGPUs {
		t.Fatalf("node allocatable GPUs = %s, want %d", got.String(), kubetest.NodeGPUs)
	}

	if _, err := cs.CoreV1().Pods("default").Create(ctx, gpuPod("fits", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, gpuPod("too-big", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var running, refused bool
	for !(running && refused) {
		if ctx.Err() != nil {
			t.Fatalf("running=%v refused=%v before timeout", running, refused)
		}
		p, err := cs.CoreV1().Pods("default").Get(ctx, "fits", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		running = p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == c.Node
		p, err = cs.CoreV1().Pods("default").Get(ctx, "too-big", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse &&
				strings.Contains(cond.Message, "Insufficient nvidia.com/gpu") {
				refused = true
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The kubeconfig file works for a fresh client, as a CLI under test would use it.
func TestKubeconfigFile(t *testing.T) {
	c := kubetest.Start(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 1 || nodes.Items[0].Name != c.Node {
		t.Fatalf("nodes via kubeconfig = %v, want just %s", nodes.Items, c.Node)
	}
	// A wrong token must be refused: the API server really authenticates.
	cfg.BearerToken = "wrong"
	cs, err = kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{}); err == nil {
		t.Fatal("a bad token listed nodes")
	}
}
