package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/llmctl/llmctl/internal/kubetest"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/deploy"
	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is one test's view of the shared cluster: its own namespace.
type env struct {
	c    *kubetest.Cluster
	kube kubernetes.Interface
	ns   string
	d    *deploy.Deployer
	flag deploy.ClientFlags
}

func newEnv(t *testing.T, ns string) *env {
	t.Helper()
	c := kubetest.Start(t)
	e := &env{c: c, kube: c.Client(t), ns: ns, flag: deploy.ClientFlags{Kubeconfig: c.Kubeconfig, Namespace: ns}}
	d, err := deploy.NewDeployer(e.flag.Getter(), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	return e
}

func (e *env) up(t *testing.T, timeout time.Duration, progress io.Writer, set ...string) (*deploy.UpResult, error) {
	t.Helper()
	return e.upWith(t, deploy.UpOptions{Timeout: timeout, Progress: progress}, set...)
}

func (e *env) upWith(t *testing.T, o deploy.UpOptions, set ...string) (*deploy.UpResult, error) {
	t.Helper()
	vals, err := deploy.Values(nil, set)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := deploy.LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout+time.Minute)
	defer cancel()
	o.Release, o.Namespace, o.Values = "llmctl", e.ns, vals
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return e.d.Up(ctx, ch, o)
}

// get reads one object through a typed client's Get, failing t if it cannot.
func get[T any](t *testing.T, get func(context.Context, string, metav1.GetOptions) (T, error), name string) T {
	t.Helper()
	v, err := get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// helmReleases lists releases the way the helm CLI does: its own storage
// driver (Secrets) through its own list action.
func (e *env) helmReleases(t *testing.T) []*release.Release {
	t.Helper()
	cfg := new(action.Configuration)
	if err := cfg.Init(e.flag.Getter(), e.ns, "secret", func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	l := action.NewList(cfg)
	l.All = true
	rels, err := l.Run()
	if err != nil {
		t.Fatal(err)
	}
	return rels
}

// hostPathPV gives the StatefulSets' claims something to bind to, as K3s's
// local-path provisioner would.
func (e *env) hostPathPV(t *testing.T, name, size string) {
	t.Helper()
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + name}},
		},
	}
	if _, err := e.kube.CoreV1().PersistentVolumes().Create(context.Background(), pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// generatedSecrets reads the credentials the chart generated on install.
func generatedSecrets(t *testing.T, e *env) map[string]string {
	t.Helper()
	s, err := e.kube.CoreV1().Secrets(e.ns).Get(context.Background(), "llmctl-gateway", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	if _, _, err := store.ParseKey(string(s.Data["admin-key"])); err != nil {
		t.Fatalf("generated admin-key is not an llmctl key: %v", err)
	}
	for _, k := range []string{"admin-key", "standard-webhook-secret", "postgres-password", "redis-password", "database-url"} {
		if len(s.Data[k]) < 16 {
			t.Fatalf("generated %s missing or short: %q", k, s.Data[k])
		}
		out[k] = string(s.Data[k])
	}
	return out
}

// The whole life of a release: install and become ready, a no-op second up,
// a values change that rolls out, helm's storage agreeing, and down keeping
// the data unless purged.
func TestUpLifecycle(t *testing.T) {
	e := newEnv(t, "life")
	e.hostPathPV(t, "life-pg", "8Gi")
	e.hostPathPV(t, "life-redis", "1Gi")
	e.hostPathPV(t, "life-spool", "1Gi")

	var progress bytes.Buffer
	res, err := e.up(t, 90*time.Second, &progress)
	if err != nil {
		t.Fatalf("up: %v\nprogress:\n%s", err, progress.String())
	}
	if res.Action != "installed" || res.Revision != 1 {
		t.Fatalf("first up: %+v", res)
	}
	if !strings.Contains(progress.String(), "✓ statefulset/llmctl-gateway 1/1") {
		t.Errorf("progress never reported the gateway ready:\n%s", progress.String())
	}
	if !strings.Contains(res.AdminKeyCommand, "get secret llmctl-gateway -o jsonpath='{.data.admin-key}'") || !strings.HasSuffix(res.Endpoint, "/v1") {
		t.Errorf("endpoint/admin key hints: %+v", res)
	}
	gw := get(t, e.kube.AppsV1().StatefulSets(e.ns).Get, "llmctl-gateway")
	if gw.Status.AvailableReplicas != 1 {
		t.Fatalf("gateway available replicas %d", gw.Status.AvailableReplicas)
	}
	pods, err := e.kube.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=llmctl"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 3 {
		t.Fatalf("want gateway, postgresql and redis pods, got %d", len(pods.Items))
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName != e.c.Node {
			t.Errorf("pod %s: phase %s on %q", p.Name, p.Status.Phase, p.Spec.NodeName)
		}
	}
	secrets := generatedSecrets(t, e)

	// Second up with the same values: a new Helm revision, nothing rolled.
	res, err = e.up(t, 60*time.Second, io.Discard)
	if err != nil {
		t.Fatalf("second up: %v", err)
	}
	if res.Action != "upgraded" || res.Revision != 2 {
		t.Fatalf("second up: %+v", res)
	}
	gw2 := get(t, e.kube.AppsV1().StatefulSets(e.ns).Get, "llmctl-gateway")
	if gw2.Generation != gw.Generation {
		t.Errorf("no-op up changed the gateway StatefulSet: generation %d -> %d", gw.Generation, gw2.Generation)
	}
	if got := generatedSecrets(t, e); !reflect.DeepEqual(got, secrets) {
		t.Error("an upgrade rotated the generated secrets")
	}

	// A values change rolls out a new revision and up waits for it.
	res, err = e.up(t, 60*time.Second, io.Discard, "gateway.logLevel=debug")
	if err != nil {
		t.Fatalf("values change: %v", err)
	}
	gw3 := get(t, e.kube.AppsV1().StatefulSets(e.ns).Get, "llmctl-gateway")
	if gw3.Generation == gw2.Generation {
		t.Fatal("values change did not change the StatefulSet")
	}
	if !contains(gw3.Spec.Template.Spec.Containers[0].Args, "--log-level=debug") {
		t.Errorf("new args not rolled out: %v", gw3.Spec.Template.Spec.Containers[0].Args)
	}
	if gw3.Status.ObservedGeneration != gw3.Generation || gw3.Status.UpdatedReplicas != 1 || gw3.Status.AvailableReplicas != 1 {
		t.Errorf("up returned before the rollout finished: %+v", gw3.Status)
	}

	rels := e.helmReleases(t)
	if len(rels) != 1 || rels[0].Name != "llmctl" || rels[0].Version != 3 || rels[0].Info.Status != release.StatusDeployed {
		t.Fatalf("helm storage: %+v", rels)
	}

	// down: release and workloads gone, claims (the database, Redis and the
	// gateway's spool) kept; then purge them.
	ctx := context.Background()
	down, err := e.d.Down(ctx, deploy.DownOptions{Release: "llmctl", Namespace: e.ns, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("down: %v", err)
	}
	if len(down.KeptPVCs) != 3 || len(down.DeletedPVCs) != 0 || !contains(down.KeptPVCs, "data-llmctl-gateway-0") {
		t.Errorf("down should keep all three claims: %+v", down)
	}
	if _, err := e.kube.AppsV1().StatefulSets(e.ns).Get(ctx, "llmctl-gateway", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("gateway StatefulSet still there after down: %v", err)
	}
	if rels := e.helmReleases(t); len(rels) != 0 {
		t.Errorf("helm still lists %d releases", len(rels))
	}
	down, err = e.d.Down(ctx, deploy.DownOptions{Release: "llmctl", Namespace: e.ns, Purge: true})
	if err != nil {
		t.Fatalf("down --purge: %v", err)
	}
	if !down.AlreadyGone || len(down.DeletedPVCs) != 3 {
		t.Errorf("down --purge: %+v", down)
	}
}

// A GPU backend asking for more GPUs than the node has makes up fail, and
// the error says why rather than only that it timed out.
func TestUpInsufficientGPU(t *testing.T) {
	e := newEnv(t, "gpu")
	if _, err := e.d.EnsureGPU(context.Background(), deploy.GPUOptions{OSReleasePath: "/nonexistent"}); err != nil {
		t.Fatal(err)
	}
	noPersist := []string{"postgresql.persistence.enabled=false", "redis.persistence.enabled=false", "persistence.enabled=false"}
	// The backend's weights claim binds to this volume (as local-path would
	// provision one), so only the GPU count keeps the pod from scheduling.
	e.modelsPV(t, "gpu-models", "llmctl-gateway-gpu-models")

	_, err := e.up(t, 8*time.Second, io.Discard, append(noPersist, "gpuBackend.enabled=true", "gpuBackend.gpus=2")...)
	if err == nil {
		t.Fatal("up with 2 GPUs on a 1-GPU node succeeded")
	}
	if !errors.Is(err, deploy.ErrRolloutTimeout) || !strings.Contains(err.Error(), "Insufficient nvidia.com/gpu") {
		t.Fatalf("error does not explain the scheduling failure: %v", err)
	}
	t.Logf("up failed as expected:\n%v", err)
	// doctor's pod diagnoser explains it, with its remedy.
	if !strings.Contains(err.Error(), "no node has a free nvidia.com/gpu") || !strings.Contains(err.Error(), "fix: the GPU is taken or not advertised") {
		t.Errorf("error lacks the diagnosis: %v", err)
	}
	if !strings.Contains(err.Error(), "llmctl-gateway-gpu") {
		t.Errorf("error does not name the GPU workload: %v", err)
	}
	// Helm's own storage says the revision failed, as `helm status` would.
	if rels := e.helmReleases(t); len(rels) != 1 || rels[0].Info.Status != release.StatusFailed || !strings.Contains(rels[0].Info.Description, "Insufficient nvidia.com/gpu") {
		t.Errorf("failed rollout not recorded as failed in helm storage: %+v", releaseSummary(rels))
	}

	// Asking for what the node has rolls out (Recreate: the stuck pod goes first).
	res, err := e.up(t, 60*time.Second, io.Discard, append(noPersist, "gpuBackend.enabled=true", "gpuBackend.gpus=1")...)
	if err != nil {
		t.Fatalf("up with 1 GPU: %v", err)
	}
	if res.Action != "upgraded" {
		t.Errorf("want an upgrade of the failed install, got %+v", res)
	}
	b := get(t, e.kube.AppsV1().Deployments(e.ns).Get, "llmctl-gateway-gpu")
	if rc := b.Spec.Template.Spec.RuntimeClassName; rc == nil || *rc != "nvidia" {
		t.Errorf("GPU backend runtimeClassName = %v", rc)
	}
	if pvc := get(t, e.kube.CoreV1().PersistentVolumeClaims(e.ns).Get, "llmctl-gateway-gpu-models"); pvc.Status.Phase != corev1.ClaimBound {
		t.Errorf("weights claim %s", pvc.Status.Phase)
	}
	// down keeps the weights (a new up does not download them again);
	// --purge deletes them.
	ctx := context.Background()
	down, err := e.d.Down(ctx, deploy.DownOptions{Release: "llmctl", Namespace: e.ns, Timeout: time.Minute})
	if err != nil || !contains(down.KeptPVCs, "llmctl-gateway-gpu-models") {
		t.Fatalf("down: %+v %v", down, err)
	}
	if down, err = e.d.Down(ctx, deploy.DownOptions{Release: "llmctl", Namespace: e.ns, Timeout: time.Minute, Purge: true}); err != nil || !contains(down.DeletedPVCs, "llmctl-gateway-gpu-models") {
		t.Fatalf("down --purge: %+v %v", down, err)
	}
}

// modelsPV is a volume reserved for one claim of the test's namespace.
func (e *env) modelsPV(t *testing.T, name, claim string) {
	t.Helper()
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: e.ns + "-" + name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("50Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef:                      &corev1.ObjectReference{Namespace: e.ns, Name: claim},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + name}},
		},
	}
	if _, err := e.kube.CoreV1().PersistentVolumes().Create(context.Background(), pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// --atomic: a failed upgrade is rolled back to the revision that worked,
// and a failed first install is uninstalled.
func TestUpAtomic(t *testing.T) {
	e := newEnv(t, "atomic")
	if _, err := e.d.EnsureGPU(context.Background(), deploy.GPUOptions{OSReleasePath: "/nonexistent"}); err != nil {
		t.Fatal(err)
	}
	noPersist := []string{"postgresql.persistence.enabled=false", "redis.persistence.enabled=false", "persistence.enabled=false"}
	tooMany := append(append([]string{}, noPersist...), "gpuBackend.enabled=true", "gpuBackend.gpus=2", "gpuBackend.persistence.enabled=false")

	res, err := e.upWith(t, deploy.UpOptions{Timeout: 8 * time.Second, Atomic: true}, tooMany...)
	if err == nil || !errors.Is(err, deploy.ErrRolloutTimeout) {
		t.Fatalf("atomic install of an unschedulable release: %v", err)
	}
	if res == nil || res.Undone != "uninstalled" || !strings.Contains(err.Error(), "uninstalled") {
		t.Fatalf("atomic install not undone: %+v, %v", res, err)
	}
	if rels := e.helmReleases(t); len(rels) != 0 {
		t.Fatalf("release left after atomic install failed: %v", releaseSummary(rels))
	}

	if _, err := e.upWith(t, deploy.UpOptions{Timeout: time.Minute}, noPersist...); err != nil {
		t.Fatalf("install: %v", err)
	}
	res, err = e.upWith(t, deploy.UpOptions{Timeout: 8 * time.Second, Atomic: true}, tooMany...)
	if err == nil || !errors.Is(err, deploy.ErrRolloutTimeout) || !strings.Contains(err.Error(), "Insufficient nvidia.com/gpu") {
		t.Fatalf("atomic upgrade to 2 GPUs: %v", err)
	}
	if res.Revision != 3 || !strings.Contains(res.Undone, "rolled back") {
		t.Errorf("atomic upgrade not rolled back: %+v", res)
	}
	rels := e.helmReleases(t)
	if len(rels) != 1 || rels[0].Version != 3 || rels[0].Info.Status != release.StatusDeployed {
		t.Fatalf("after rollback: %v", releaseSummary(rels))
	}
	if _, ok := rels[0].Config["gpuBackend"]; ok {
		t.Errorf("rolled-back revision still carries the GPU values: %v", rels[0].Config)
	}
	// The GPU backend of the failed revision is gone again.
	if _, err := e.kube.AppsV1().Deployments(e.ns).Get(context.Background(), "llmctl-gateway-gpu", metav1.GetOptions{}); err == nil {
		t.Error("GPU backend Deployment still exists after the rollback")
	}
}

func releaseSummary(rels []*release.Release) []string {
	var out []string
	for _, r := range rels {
		out = append(out, fmt.Sprintf("%s rev %d %s (%s)", r.Name, r.Version, r.Info.Status, r.Info.Description))
	}
	return out
}

func TestEnsureGPUIdempotent(t *testing.T) {
	e := newEnv(t, "default")
	osr := t.TempDir() + "/osrelease"
	if err := os.WriteFile(osr, []byte("5.15.167.4-microsoft-standard-WSL2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := e.d.EnsureGPU(ctx, deploy.GPUOptions{OSReleasePath: osr, Node: e.c.Node})
	if err != nil {
		t.Fatal(err)
	}
	if !first.WSL2 || len(first.LabeledNodes) != 1 {
		t.Errorf("WSL2 node not labeled: %+v", first)
	}
	ds, err := e.kube.AppsV1().DaemonSets(facts.DevicePluginNamespace).Get(ctx, facts.DevicePluginName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rc := ds.Spec.Template.Spec.RuntimeClassName; rc == nil || *rc != "nvidia" {
		t.Errorf("device plugin runtimeClassName = %v, want nvidia", rc)
	}
	if _, err := e.kube.NodeV1().RuntimeClasses().Get(ctx, "nvidia", metav1.GetOptions{}); err != nil {
		t.Errorf("RuntimeClass nvidia: %v", err)
	}
	node, err := e.kube.CoreV1().Nodes().Get(ctx, e.c.Node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Labels[facts.GPUPresentLabel] != "true" {
		t.Errorf("node labels: %v", node.Labels)
	}
	second, err := e.d.EnsureGPU(ctx, deploy.GPUOptions{OSReleasePath: osr, Node: e.c.Node})
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Changes) != 0 {
		t.Errorf("second EnsureGPU changed things: %v", second.Changes)
	}
}

func TestReachableFailsClearly(t *testing.T) {
	dir := t.TempDir()
	kc := dir + "/kubeconfig"
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: x\ncurrent-context: c\n"
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	f := deploy.ClientFlags{Kubeconfig: kc}
	_, err := deploy.Reachable(context.Background(), f.Getter(), 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "unreachable at https://127.0.0.1:1") {
		t.Fatalf("want an unreachable error naming the server, got %v", err)
	}
}
