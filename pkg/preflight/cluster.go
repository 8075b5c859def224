package preflight

import (
	"encoding/json"

	"context"
	"errors"
	"fmt"
	"io"
	appsv1 "k8s.io/api/apps/v1"
	"net"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

// maxLogBytes bounds how much of a pod's log is read.
const maxLogBytes = 64 << 10

func clusterChecks() []Check {
	return []Check{
		{ID: "cluster.api", Category: CatCluster, Title: "API server reachable", Run: checkAPI},
		{ID: "cluster.nodes", Category: CatCluster, Title: "Nodes Ready", Run: checkNodes},
		{ID: "cluster.runtimeclass", Category: CatCluster, Title: "RuntimeClass nvidia", Run: checkRuntimeClass},
		{ID: "cluster.gpu-allocatable", Category: CatCluster, Title: "Nodes advertise nvidia.com/gpu", Run: checkAllocatable},
		{ID: "cluster.device-plugin", Category: CatCluster, Title: "NVIDIA device plugin DaemonSet", Run: checkDevicePlugin},
		{ID: "cluster.workloads", Category: CatCluster, Title: "Gateway pods healthy", Run: checkWorkloads},
	}
}

type apiFacts struct {
	version string
	err     error
}

// api probes /version once per run under the call timeout.
func (e *Env) api(ctx context.Context) apiFacts {
	e.facts.apiOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.CallTimeout)
		defer cancel()
		rc := e.Kube.Client.Discovery().RESTClient()
		if rc == nil {
			v, err := e.Kube.Client.Discovery().ServerVersion()
			if err != nil {
				e.facts.api = apiFacts{err: err}
				return
			}
			e.facts.api = apiFacts{version: v.GitVersion}
			return
		}
		var v struct {
			GitVersion string `json:"gitVersion"`
		}
		body, err := rc.Get().AbsPath("/version").Do(ctx).Raw()
		if err == nil {
			err = json.Unmarshal(body, &v)
		}
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			err = fmt.Errorf("no answer within %s: %w", e.CallTimeout, err)
		}
		e.facts.api = apiFacts{version: v.GitVersion, err: err}
	})
	return e.facts.api
}

// kube returns the client when the API server answered, or the skip that
// explains why the cluster checks cannot run (cluster.api says the rest).
func (e *Env) kube(ctx context.Context) (kubernetes.Interface, *Outcome) {
	if e.Kube.Client == nil {
		o := skip("no cluster to check (see cluster.api)")
		return nil, &o
	}
	if a := e.api(ctx); a.err != nil {
		o := skip("API server unreachable (see cluster.api)")
		return nil, &o
	}
	return e.Kube.Client, nil
}

// nodes lists the cluster's nodes once per run; several checks read them.
func (e *Env) nodes(ctx context.Context, kc kubernetes.Interface) ([]corev1.Node, error) {
	e.facts.nodesOnce.Do(func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.CallTimeout)
		defer cancel()
		list, err := kc.CoreV1().Nodes().List(cctx, metav1.ListOptions{})
		if err != nil {
			e.facts.nodesErr = fmt.Errorf("list nodes: %w", err)
			return
		}
		e.facts.nodes = list.Items
	})
	return e.facts.nodes, e.facts.nodesErr
}

// call bounds one API request.
func (e *Env) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.CallTimeout)
}

func checkAPI(ctx context.Context, e *Env) Outcome {
	if e.Kube.Client == nil {
		err := e.Kube.Err
		if err == nil {
			err = facts.ErrNoKubeconfig
		}
		if errors.Is(err, facts.ErrNoKubeconfig) {
			if e.k3sInstalled() {
				return warn("K3s is installed but no kubeconfig was found", "K3s writes "+facts.K3sKubeconfig+" when the server starts: `sudo systemctl start k3s`", err.Error())
			}
			return skip("no Kubernetes cluster configured (K3s not installed)", err.Error())
		}
		return fail("cannot use the kubeconfig", "pass a readable one with --kubeconfig, or run with sudo to read "+facts.K3sKubeconfig, err.Error())
	}
	a := e.api(ctx)
	ev := []string{"kubeconfig: " + e.Kube.Source}
	if a.err != nil {
		ev = append(ev, "GET /version: "+a.err.Error())
		return fail("API server unreachable",
			"check K3s: `sudo systemctl status k3s` and `sudo journalctl -u k3s -e` (a crash-looping K3s often means containerd cannot start: see the runtime checks)", ev...)
	}
	return pass("API server "+a.version, ev...)
}

func checkNodes(ctx context.Context, e *Env) Outcome {
	kc, o := e.kube(ctx)
	if o != nil {
		return *o
	}
	nodes, err := e.nodes(ctx, kc)
	if err != nil {
		return fail("cannot list nodes", "check the kubeconfig's RBAC permissions", err.Error())
	}
	if len(nodes) == 0 {
		return fail("the cluster has no nodes", "the K3s agent has not registered: `sudo journalctl -u k3s -e`")
	}
	var ev, notReady []string
	for _, n := range nodes {
		ready, why := nodeReady(n)
		ni := n.Status.NodeInfo
		ev = append(ev, evf("%s: Ready=%s, kubelet %s, runtime %s, kernel %s", n.Name, ready, ni.KubeletVersion, ni.ContainerRuntimeVersion, ni.KernelVersion))
		if ready != corev1.ConditionTrue {
			notReady = append(notReady, n.Name+" ("+why+")")
		}
	}
	if len(notReady) > 0 {
		return fail("not Ready: "+strings.Join(notReady, ", "),
			"`kubectl describe node` shows why; a NotReady K3s node is usually its container runtime (see the runtime checks) or disk/memory pressure", ev...)
	}
	return pass(fmt.Sprintf("%d node(s) Ready", len(nodes)), ev...)
}

func nodeReady(n corev1.Node) (corev1.ConditionStatus, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status, strings.TrimSpace(c.Reason + " " + c.Message)
		}
	}
	return corev1.ConditionUnknown, "no Ready condition"
}

// clusterGPUs sums allocatable nvidia.com/gpu per node.
func clusterGPUs(nodes []corev1.Node) map[string]int64 {
	out := map[string]int64{}
	for _, n := range nodes {
		if q, ok := n.Status.Allocatable[facts.GPUResource]; ok {
			out[n.Name] = q.Value()
		}
	}
	return out
}

func checkRuntimeClass(ctx context.Context, e *Env) Outcome {
	kc, o := e.kube(ctx)
	if o != nil {
		return *o
	}
	cctx, cancel := e.call(ctx)
	defer cancel()
	rc, err := kc.NodeV1().RuntimeClasses().Get(cctx, facts.RuntimeClass, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if !e.gpuExpected(ctx) && !e.clusterHasGPU(ctx, kc) {
			return skip("no RuntimeClass nvidia, and no GPU here or in the cluster")
		}
		out := fail("RuntimeClass \"nvidia\" does not exist: pods asking for it are rejected",
			"create it (K3s does this itself only when it finds nvidia-container-runtime at start): `kubectl apply -f -` with a RuntimeClass named nvidia, handler nvidia (--fix)")
		out.Fix = runtimeClassFix(kc)
		return out
	}
	if err != nil {
		return fail("cannot read RuntimeClass nvidia", "check RBAC for node.k8s.io runtimeclasses", err.Error())
	}
	if rc.Handler != facts.RuntimeHandler {
		return warn(fmt.Sprintf("RuntimeClass nvidia has handler %q", rc.Handler),
			"the handler must name the containerd runtime K3s configured (\"nvidia\")", "handler: "+rc.Handler)
	}
	return pass("RuntimeClass nvidia → handler nvidia")
}

func (e *Env) runtimeClassExists(ctx context.Context, kc kubernetes.Interface) bool {
	cctx, cancel := e.call(ctx)
	defer cancel()
	_, err := kc.NodeV1().RuntimeClasses().Get(cctx, facts.RuntimeClass, metav1.GetOptions{})
	return err == nil
}

func (e *Env) clusterHasGPU(ctx context.Context, kc kubernetes.Interface) bool {
	nodes, err := e.nodes(ctx, kc)
	if err != nil {
		return false
	}
	for _, v := range clusterGPUs(nodes) {
		if v > 0 {
			return true
		}
	}
	return false
}

func runtimeClassFix(kc kubernetes.Interface) *Fix {
	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: facts.RuntimeClass}, Handler: facts.RuntimeHandler}
	return &Fix{
		ID:      "runtimeclass",
		Summary: "create RuntimeClass nvidia (handler nvidia)",
		Preview: "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: nvidia\nhandler: nvidia\n",
		Apply: func(ctx context.Context) (string, error) {
			_, err := kc.NodeV1().RuntimeClasses().Create(ctx, rc, metav1.CreateOptions{FieldManager: "llmctl-doctor"})
			if apierrors.IsAlreadyExists(err) {
				return "RuntimeClass nvidia already exists", nil
			}
			if err != nil {
				return "", fmt.Errorf("create RuntimeClass nvidia: %w", err)
			}
			return "created RuntimeClass nvidia", nil
		},
	}
}

// localNode picks the node this host runs: the only node, or the one named
// like the host.
func (e *Env) localNode(nodes []corev1.Node) *corev1.Node {
	if len(nodes) == 1 {
		return &nodes[0]
	}
	host, _ := e.read("/etc/hostname")
	host = strings.TrimSpace(host)
	for i := range nodes {
		if host != "" && nodes[i].Name == host {
			return &nodes[i]
		}
	}
	return nil
}

func checkAllocatable(ctx context.Context, e *Env) Outcome {
	kc, o := e.kube(ctx)
	if o != nil {
		return *o
	}
	nodes, err := e.nodes(ctx, kc)
	if err != nil {
		return fail("cannot list nodes", "check the kubeconfig's RBAC permissions", err.Error())
	}
	gpus := clusterGPUs(nodes)
	var ev []string
	var total int64
	for _, n := range nodes {
		ev = append(ev, evf("%s: allocatable nvidia.com/gpu=%d, label %s=%q", n.Name, gpus[n.Name], facts.GPUPresentLabel, n.Labels[facts.GPUPresentLabel]))
		total += gpus[n.Name]
	}
	isWSL := e.wsl() == facts.WSL2
	if isWSL {
		ev = append(ev, "WSL2: the device plugin advertises the paravirtualised GPU as one device; 1 means all of it, and it cannot be shared by count")
	}
	if total > 0 {
		return pass(fmt.Sprintf("%d nvidia.com/gpu allocatable", total), ev...)
	}
	if !e.gpuExpected(ctx) {
		return skip("no node advertises nvidia.com/gpu, and this host has no GPU", ev...)
	}
	out := fail("no node advertises nvidia.com/gpu: GPU pods stay Pending",
		"the NVIDIA device plugin is missing or finds no GPU: see cluster.device-plugin", ev...)
	if n := e.localNode(nodes); isWSL && n != nil && n.Labels[facts.GPUPresentLabel] != "true" {
		out.Remedy = "on WSL2 node feature discovery cannot see the GPU (no PCI device), so the device plugin's node affinity never matches: label the node " + facts.GPUPresentLabel + "=true (--fix)"
		out.Fix = nodeLabelFix(kc, n.Name)
	}
	return out
}

func nodeLabelFix(kc kubernetes.Interface, node string) *Fix {
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"true"}}}`, facts.GPUPresentLabel)
	return &Fix{
		ID:      "wsl-node-label",
		Summary: "label node " + node + " " + facts.GPUPresentLabel + "=true",
		Preview: "kubectl label node " + node + " " + facts.GPUPresentLabel + "=true",
		Apply: func(ctx context.Context) (string, error) {
			_, err := kc.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "llmctl-doctor"})
			if err != nil {
				return "", fmt.Errorf("label node %s: %w", node, err)
			}
			return "labelled node " + node + " " + facts.GPUPresentLabel + "=true", nil
		},
	}
}

// knownFailure is a message seen in logs or events, what it means, and the fix.
type knownFailure struct {
	pattern string
	meaning string
	remedy  string
}

var pluginLogFailures = []knownFailure{
	{"could not load NVML library", "the plugin container has no NVIDIA libraries: it ran under runc, not the nvidia runtime",
		"set `runtimeClassName: nvidia` on the device plugin DaemonSet (the upstream chart leaves it empty) and check runtime.k3s-containerd"},
	{"Failed to initialize NVML", "NVML failed inside the plugin container",
		"the container lacks the driver libraries or device nodes: set `runtimeClassName: nvidia`, and on cgroup v2 see runtime.dev-char"},
	{"No devices found", "the plugin found no GPU",
		"check gpu.devices; on WSL2 the plugin needs the nvidia runtime and the node label " + facts.GPUPresentLabel + "=true"},
}

// matchFailures returns the known failures found in text (a log or event).
func matchFailures(text string, known []knownFailure) []knownFailure {
	var out []knownFailure
	for _, k := range known {
		if strings.Contains(text, k.pattern) {
			out = append(out, k)
		}
	}
	return out
}

func isDevicePlugin(meta metav1.ObjectMeta) bool {
	n := meta.Name
	return strings.Contains(n, facts.DevicePluginName) || meta.Labels["app.kubernetes.io/name"] == facts.DevicePluginName ||
		(strings.Contains(n, "nvidia") && strings.Contains(n, "device-plugin"))
}

func checkDevicePlugin(ctx context.Context, e *Env) Outcome {
	kc, o := e.kube(ctx)
	if o != nil {
		return *o
	}
	cctx, cancel := e.call(ctx)
	defer cancel()
	dss, err := kc.AppsV1().DaemonSets("").List(cctx, metav1.ListOptions{})
	if err != nil {
		return fail("cannot list DaemonSets", "check RBAC", err.Error())
	}
	idx := slices.IndexFunc(dss.Items, func(d appsv1.DaemonSet) bool { return isDevicePlugin(d.ObjectMeta) })
	if idx < 0 {
		if e.clusterHasGPU(ctx, kc) {
			// Something advertises GPUs: a plugin under another name (GPU
			// operator, a cloud's own), which this check does not know.
			return skip("nodes advertise nvidia.com/gpu, but no DaemonSet named like nvidia-device-plugin was found to inspect")
		}
		if !e.gpuExpected(ctx) {
			return skip("no NVIDIA device plugin, and no GPU here")
		}
		return fail("no NVIDIA device plugin DaemonSet: nodes never advertise nvidia.com/gpu",
			"install it with `runtimeClassName: nvidia`: `llmctl up --gpu` does, or the nvidia-device-plugin Helm chart with --set runtimeClassName=nvidia")
	}
	ds := dss.Items[idx]
	st := ds.Status
	ev := []string{evf("%s/%s: desired %d, ready %d, available %d", ds.Namespace, ds.Name, st.DesiredNumberScheduled, st.NumberReady, st.NumberAvailable)}
	rcn := ""
	if ds.Spec.Template.Spec.RuntimeClassName != nil {
		rcn = *ds.Spec.Template.Spec.RuntimeClassName
	}
	ev = append(ev, evf("pod template runtimeClassName: %q", rcn))
	out := Outcome{Verdict: Pass, Message: fmt.Sprintf("%s ready %d/%d", ds.Name, st.NumberReady, st.DesiredNumberScheduled)}
	var rem []string
	// Where GPU containers need RuntimeClass nvidia (K3s: runc is the
	// default runtime), the plugin needs it too, or it sees no NVML.
	if rcn != facts.RuntimeClass && (e.k3sInstalled() || e.runtimeClassExists(ctx, kc)) {
		out.Verdict = worse(out.Verdict, Warn)
		rem = append(rem, "set `runtimeClassName: nvidia` on the DaemonSet: on K3s the default runtime is runc, which gives the plugin no NVML")
	}
	if st.DesiredNumberScheduled == 0 {
		out.Verdict = worse(out.Verdict, Fail)
		out.Message = ds.Name + " is scheduled on no node"
		r := "its nodeSelector/affinity matches no node"
		if e.wsl() == facts.WSL2 {
			r += ": on WSL2 node feature discovery cannot see the GPU, so label the node " + facts.GPUPresentLabel + "=true (--fix)"
			if nodes, err := e.nodes(ctx, kc); err == nil {
				if n := e.localNode(nodes); n != nil && n.Labels[facts.GPUPresentLabel] != "true" {
					out.Fix = nodeLabelFix(kc, n.Name)
				}
			}
		}
		rem = append(rem, r)
	} else if st.NumberReady < st.DesiredNumberScheduled {
		out.Verdict = worse(out.Verdict, Fail)
		out.Message = fmt.Sprintf("%s ready %d/%d", ds.Name, st.NumberReady, st.DesiredNumberScheduled)
	}
	// Logs say why a plugin is up but advertises nothing, or why it crashes.
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err == nil {
		found := e.podLogFailures(ctx, kc, ds.Namespace, sel)
		for _, f := range found {
			out.Verdict = worse(out.Verdict, Fail)
			ev = append(ev, f.evidence)
			out.Message = ds.Name + ": " + f.k.meaning
			rem = append(rem, f.k.remedy)
		}
	}
	out.Evidence = ev
	out.Remedy = strings.Join(dedupe(rem), "\n")
	return out
}

type logFinding struct {
	k        knownFailure
	evidence string
}

// podLogFailures reads the tail of each selected pod's logs (current and, for
// restarted containers, previous) and matches the known failure strings.
func (e *Env) podLogFailures(ctx context.Context, kc kubernetes.Interface, ns string, sel labels.Selector) []logFinding {
	cctx, cancel := e.call(ctx)
	defer cancel()
	pods, err := kc.CoreV1().Pods(ns).List(cctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil
	}
	var out []logFinding
	seen := map[string]bool{}
	tail := int64(200)
	limit := int64(maxLogBytes)
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			for _, prev := range []bool{false, true} {
				if prev && cs.RestartCount == 0 {
					continue
				}
				text, err := e.podLog(ctx, kc, p.Namespace, p.Name, &corev1.PodLogOptions{Container: cs.Name, Previous: prev, TailLines: &tail, LimitBytes: &limit})
				if err != nil {
					continue // no logs (yet): nothing to match
				}
				for _, k := range matchFailures(text, pluginLogFailures) {
					if !seen[k.pattern] {
						seen[k.pattern] = true
						out = append(out, logFinding{k: k, evidence: evf("pod %s log: %q", p.Name, lineWith(text, k.pattern))})
					}
				}
			}
		}
	}
	return out
}

func (e *Env) podLog(ctx context.Context, kc kubernetes.Interface, ns, pod string, opt *corev1.PodLogOptions) (string, error) {
	cctx, cancel := e.call(ctx)
	defer cancel()
	rc, err := kc.CoreV1().Pods(ns).GetLogs(pod, opt).Stream(cctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxLogBytes))
	return string(b), err
}

func lineWith(text, pattern string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, pattern) {
			return strings.TrimSpace(l)
		}
	}
	return pattern
}

func checkWorkloads(ctx context.Context, e *Env) Outcome {
	kc, o := e.kube(ctx)
	if o != nil {
		return *o
	}
	cctx, cancel := e.call(ctx)
	defer cancel()
	pods, err := kc.CoreV1().Pods(e.Namespace).List(cctx, metav1.ListOptions{})
	if err != nil {
		return fail("cannot list pods in "+e.Namespace, "check RBAC", err.Error())
	}
	events, err := kc.CoreV1().Events(e.Namespace).List(cctx, metav1.ListOptions{})
	if err != nil {
		return fail("cannot list events in "+e.Namespace, "check RBAC", err.Error())
	}
	byObject := map[types.UID][]corev1.Event{}
	for _, ev := range events.Items {
		byObject[ev.InvolvedObject.UID] = append(byObject[ev.InvolvedObject.UID], ev)
	}
	var problems []facts.Problem
	// Controllers' events: a pod rejected at admission never exists, only its
	// ReplicaSet's FailedCreate event does.
	for _, ev := range events.Items {
		if pr, ok := facts.DiagnoseEvent(ev); ok {
			problems = append(problems, pr)
		}
	}
	if len(pods.Items) == 0 && len(problems) == 0 {
		return skip(fmt.Sprintf("no pods in namespace %s (not deployed: `llmctl up`)", e.Namespace))
	}
	healthy := 0
	for i := range pods.Items {
		p := &pods.Items[i]
		if pr, ok := facts.DiagnosePod(p, byObject[p.UID]); ok {
			problems = append(problems, pr)
		} else {
			healthy++
		}
	}
	if len(problems) == 0 {
		return pass(fmt.Sprintf("%d pod(s) in %s Running and Ready", healthy, e.Namespace))
	}
	out := Outcome{Verdict: Pass}
	var sums, rems []string
	for _, pr := range problems {
		v := Fail
		if pr.Degraded {
			v = Warn
		}
		out.Verdict = worse(out.Verdict, v)
		sums = append(sums, pr.String())
		out.Evidence = append(out.Evidence, pr.Evidence...)
		rems = append(rems, pr.Remedy)
	}
	sort.Strings(sums)
	out.Message = strings.Join(dedupe(sums), "; ")
	out.Remedy = strings.Join(dedupe(rems), "\n")
	return out
}
