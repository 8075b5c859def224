//go:build cgo

package preflight_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/llmctl/llmctl/internal/kubetest"
	"github.com/llmctl/llmctl/pkg/gpu/gonvml"
	"github.com/llmctl/llmctl/pkg/preflight"
)

// One control plane (kube-apiserver, controller-manager, scheduler, KWOK
// fake GPU node) for the package: see internal/kubetest.
func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

func runOnly(t *testing.T, env *preflight.Env, ids ...string) map[string]preflight.Result {
	t.Helper()
	checks, err := preflight.Select(preflight.All(), ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]preflight.Result{}
	for _, r := range preflight.Run(context.Background(), env, checks, preflight.RunOptions{}).Results {
		out[r.ID] = r
	}
	return out
}

func clusterEnv(t *testing.T, fixture string, kc kubernetes.Interface, ns string) *preflight.Env {
	return &preflight.Env{
		Root: copyTree(t, filepath.Join("testdata", fixture)), GPU: gonvml.New(rtx4090(t)),
		Kube: preflight.KubeTarget{Client: kc, Source: "kubetest"}, Namespace: ns, Statfs: fixedDisk,
	}
}

func yes(*preflight.Fix) (bool, error) { return true, nil }

// eventually polls cond until it holds or a minute passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestClusterChecks drives the cluster checks against a real API server. The
// subtests share cluster-scoped objects, so they run in order.
func TestClusterChecks(t *testing.T) {
	c := kubetest.Start(t)
	if c == nil {
		return
	}
	kc := c.Client(t)
	ctx := context.Background()

	t.Run("api, nodes and GPUs", func(t *testing.T) {
		res := runOnly(t, clusterEnv(t, "healthy-k3s", kc, "default"), "cluster.api", "cluster.nodes", "cluster.gpu-allocatable")
		if r := res["cluster.api"]; r.Verdict != preflight.Pass || !strings.Contains(r.Message, kubetest.Version) {
			t.Errorf("api: %s %s", r.Verdict, r.Message)
		}
		if r := res["cluster.nodes"]; r.Verdict != preflight.Pass || !strings.Contains(strings.Join(r.Evidence, ""), c.Node+": Ready=True") {
			t.Errorf("nodes: %s %s %v", r.Verdict, r.Message, r.Evidence)
		}
		if r := res["cluster.gpu-allocatable"]; r.Verdict != preflight.Pass || r.Message != "1 nvidia.com/gpu allocatable" {
			t.Errorf("allocatable: %s %s", r.Verdict, r.Message)
		}
	})

	t.Run("RuntimeClass missing, then created by --fix", func(t *testing.T) {
		err := kc.NodeV1().RuntimeClasses().Delete(ctx, "nvidia", metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		env := clusterEnv(t, "healthy-k3s", kc, "default")
		checks, _ := preflight.Select(preflight.All(), []string{"cluster.runtimeclass"}, nil)
		rep := preflight.Run(ctx, env, checks, preflight.RunOptions{})
		if r := rep.Results[0]; r.Verdict != preflight.Fail || r.FixID != "runtimeclass" {
			t.Fatalf("missing: %s %s fix %q", r.Verdict, r.Message, r.FixID)
		}
		var log strings.Builder
		if res := preflight.ApplyFixes(ctx, rep, &log, yes); len(res) != 1 || !res[0].Applied {
			t.Fatalf("fix: %+v\n%s", res, log.String())
		}
		rc, err := kc.NodeV1().RuntimeClasses().Get(ctx, "nvidia", metav1.GetOptions{})
		if err != nil || rc.Handler != "nvidia" {
			t.Fatalf("after fix: %v %v", rc, err)
		}
		if r := runOnly(t, clusterEnv(t, "healthy-k3s", kc, "default"), "cluster.runtimeclass")["cluster.runtimeclass"]; r.Verdict != preflight.Pass {
			t.Errorf("after fix: %s %s", r.Verdict, r.Message)
		}
	})

	t.Run("device plugin on WSL2: not scheduled until the node is labelled", func(t *testing.T) {
		env := clusterEnv(t, "wsl2-no-systemd", kc, "default")
		// KWOK's node advertises a GPU without any plugin: the check says it
		// has nothing to inspect rather than claiming the GPU is missing.
		if r := runOnly(t, env, "cluster.device-plugin")["cluster.device-plugin"]; r.Verdict != preflight.Skip || !strings.Contains(r.Message, "nodes advertise nvidia.com/gpu") {
			t.Errorf("absent: %s %s", r.Verdict, r.Message)
		}
		ds := devicePluginDS()
		created, err := kc.AppsV1().DaemonSets("kube-system").Create(ctx, ds, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = kc.AppsV1().DaemonSets("kube-system").Delete(ctx, ds.Name, metav1.DeleteOptions{})
			patch := `{"metadata":{"labels":{"nvidia.com/gpu.present":null}}}`
			_, _ = kc.CoreV1().Nodes().Patch(ctx, c.Node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		})
		eventually(t, "the DaemonSet controller to observe the DaemonSet", func() bool {
			d, err := kc.AppsV1().DaemonSets("kube-system").Get(ctx, ds.Name, metav1.GetOptions{})
			return err == nil && d.Status.ObservedGeneration >= created.Generation
		})
		checks, _ := preflight.Select(preflight.All(), []string{"cluster.device-plugin"}, nil)
		rep := preflight.Run(ctx, clusterEnv(t, "wsl2-no-systemd", kc, "default"), checks, preflight.RunOptions{})
		r := rep.Results[0]
		if r.Verdict != preflight.Fail || !strings.Contains(r.Message, "scheduled on no node") || r.FixID != "wsl-node-label" {
			t.Fatalf("unscheduled: %s %s fix %q", r.Verdict, r.Message, r.FixID)
		}
		for _, want := range []string{"runtimeClassName: nvidia", "nvidia.com/gpu.present=true"} {
			if !strings.Contains(r.Remedy, want) {
				t.Errorf("remedy lacks %q: %s", want, r.Remedy)
			}
		}
		if !strings.Contains(strings.Join(r.Evidence, "\n"), `pod template runtimeClassName: ""`) {
			t.Errorf("evidence: %v", r.Evidence)
		}
		var log strings.Builder
		if res := preflight.ApplyFixes(ctx, rep, &log, yes); len(res) != 1 || !res[0].Applied {
			t.Fatalf("label fix: %+v\n%s", res, log.String())
		}
		eventually(t, "the DaemonSet to be scheduled on the labelled node", func() bool {
			d, err := kc.AppsV1().DaemonSets("kube-system").Get(ctx, ds.Name, metav1.GetOptions{})
			return err == nil && d.Status.DesiredNumberScheduled == 1
		})
		r = runOnly(t, clusterEnv(t, "wsl2-no-systemd", kc, "default"), "cluster.device-plugin")["cluster.device-plugin"]
		if strings.Contains(r.Message, "scheduled on no node") || r.FixID != "" {
			t.Errorf("after labelling: %s %s fix %q", r.Verdict, r.Message, r.FixID)
		}
	})

	t.Run("failing gateway pods", func(t *testing.T) {
		ns := "llmctl-broken"
		if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		env := clusterEnv(t, "healthy-k3s", kc, ns)
		if r := runOnly(t, env, "cluster.workloads")["cluster.workloads"]; r.Verdict != preflight.Skip {
			t.Errorf("empty namespace: %s %s", r.Verdict, r.Message)
		}
		crash := customPod(c, ns, "gateway-crash")
		setStatus(t, kc, crash, corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "gateway", RestartCount: 7,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 5m0s restarting failed container"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137}},
		}}})
		pull := customPod(c, ns, "gateway-pull")
		setStatus(t, kc, pull, corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
			Name:  "gateway",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "example.invalid/llmctl:0"`}},
		}}})
		unready := customPod(c, ns, "gateway-unready")
		setStatus(t, kc, unready, corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady", Message: "containers with unready status: [gateway]"}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "gateway", Ready: false,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}})
		sandbox := customPod(c, ns, "backend-sandbox")
		p := createPod(t, kc, sandbox)
		setStatus(t, kc, p, corev1.PodStatus{Phase: corev1.PodPending})
		warnEvent(t, kc, ns, corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: p.Name, UID: p.UID}, "FailedCreatePodSandBox",
			`Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox runtime: no runtime for "nvidia" is configured`)
		warnEvent(t, kc, ns, corev1.ObjectReference{Kind: "ReplicaSet", Namespace: ns, Name: "backend-5d4f9", UID: "d3c5e1f2-0000-4000-8000-000000000001"}, "FailedCreate",
			`Error creating: pods "backend-5d4f9-" is forbidden: pod rejected: RuntimeClass "nvidia" not found`)
		// The real scheduler refuses a pod asking for more GPUs than the node has.
		big := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "backend-2gpu", Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "vllm", Image: "example.invalid/vllm:0",
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(2, resource.DecimalSI)}}}}}}
		createPod(t, kc, big)
		eventually(t, "the scheduler to refuse the 2-GPU pod", func() bool {
			p, err := kc.CoreV1().Pods(ns).Get(ctx, big.Name, metav1.GetOptions{})
			if err != nil {
				return false
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodScheduled && strings.Contains(cond.Message, "Insufficient nvidia.com/gpu") {
					return true
				}
			}
			return false
		})

		r := runOnly(t, env, "cluster.workloads")["cluster.workloads"]
		if r.Verdict != preflight.Fail {
			t.Errorf("verdict %s", r.Verdict)
		}
		all := r.Message + "\n" + strings.Join(r.Evidence, "\n") + "\n" + r.Remedy
		for _, want := range []string{
			"gateway-crash: container gateway in CrashLoopBackOff (OOMKilled)", "last termination: reason OOMKilled, exit code 137",
			"gateway-pull: cannot pull image example.invalid/llmctl:0",
			"gateway-unready: Running but not Ready",
			"backend-sandbox: the node's containerd has no nvidia runtime",
			"backend-2gpu: no node has a free nvidia.com/gpu",
			"ReplicaSet backend-5d4f9: pods ask for RuntimeClass nvidia, which does not exist",
			"raise its memory limit",
		} {
			if !strings.Contains(all, want) {
				t.Errorf("workloads report lacks %q:\n%s", want, all)
			}
		}
	})
}

func devicePluginDS() *appsv1.DaemonSet {
	labels := map[string]string{"app.kubernetes.io/name": "nvidia-device-plugin"}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "nvidia-device-plugin-daemonset", Namespace: "kube-system", Labels: labels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					// As the upstream chart renders it: no runtimeClassName, and
					// only nodes labelled as having a GPU.
					NodeSelector: map[string]string{"nvidia.com/gpu.present": "true"},
					Tolerations:  []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Containers:   []corev1.Container{{Name: "nvidia-device-plugin-ctr", Image: "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"}},
				},
			},
		},
	}
}

// customPod is bound to the KWOK node directly and marked so KWOK leaves
// its status to the test.
func customPod(c *kubetest.Cluster, ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: map[string]string{kubetest.DisregardAnnotation: kubetest.DisregardValue}},
		Spec: corev1.PodSpec{NodeName: c.Node, Containers: []corev1.Container{{Name: "gateway", Image: "example.invalid/llmctl:0"}},
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
	}
}

func createPod(t *testing.T, kc kubernetes.Interface, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	got, err := kc.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// setStatus creates p if needed and writes its status through the API.
func setStatus(t *testing.T, kc kubernetes.Interface, p *corev1.Pod, st corev1.PodStatus) {
	t.Helper()
	ctx := context.Background()
	cur, err := kc.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cur = createPod(t, kc, p)
	} else if err != nil {
		t.Fatal(err)
	}
	cur.Status = st
	if _, err := kc.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func warnEvent(t *testing.T, kc kubernetes.Interface, ns string, obj corev1.ObjectReference, reason, msg string) {
	t.Helper()
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: strings.ToLower(obj.Name) + "-", Namespace: ns},
		InvolvedObject: obj, Reason: reason, Message: msg, Type: corev1.EventTypeWarning,
		FirstTimestamp: now, LastTimestamp: now, Count: 1, Source: corev1.EventSource{Component: "kubelet"},
	}
	if _, err := kc.CoreV1().Events(ns).Create(context.Background(), ev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
