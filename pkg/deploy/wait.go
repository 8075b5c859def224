package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

// instanceLabel selects everything the chart created for one release.
const instanceLabel = "app.kubernetes.io/instance"

// watcher follows a release's workloads until they are rolled out.
type watcher struct {
	kube      kubernetes.Interface
	namespace string
	release   string
	out       io.Writer
	tty       bool
	interval  time.Duration
}

// ErrRolloutTimeout is wrapped by the error Up returns when the workloads are
// not ready in time; the message carries the reasons.
var ErrRolloutTimeout = errors.New("rollout not finished")

// workload is one Deployment or StatefulSet's rollout state.
type workload struct {
	kind, name     string
	ready, desired int32
	done           bool
}

func (w workload) String() string {
	return fmt.Sprintf("%s/%s %d/%d", strings.ToLower(w.kind), w.name, w.ready, w.desired)
}

func (w *watcher) wait(ctx context.Context, timeout time.Duration) error {
	if w.interval == 0 {
		w.interval = 500 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	last := ""
	for {
		ws, err := w.workloads(ctx)
		if err != nil {
			return err
		}
		line, done := progressLine(ws)
		if line != last {
			w.print(line)
			last = line
		}
		if done {
			w.finish()
			return nil
		}
		if time.Now().After(deadline) {
			w.finish()
			return w.explain(ctx, timeout, ws)
		}
		select {
		case <-ctx.Done():
			w.finish()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (w *watcher) print(line string) {
	if w.out == nil {
		return
	}
	if w.tty {
		fmt.Fprintf(w.out, "\r\033[K%s", line) // redraw one status line
		return
	}
	fmt.Fprintln(w.out, line)
}

func (w *watcher) finish() {
	if w.out != nil && w.tty {
		fmt.Fprintln(w.out)
	}
}

func progressLine(ws []workload) (string, bool) {
	if len(ws) == 0 {
		return "waiting: no workloads yet", false
	}
	done := true
	parts := make([]string, 0, len(ws))
	for _, x := range ws {
		mark := "…"
		if x.done {
			mark = "✓"
		} else {
			done = false
		}
		parts = append(parts, mark+" "+x.String())
	}
	prefix := "rolling out: "
	if done {
		prefix = "ready: "
	}
	return prefix + strings.Join(parts, "  "), done
}

func (w *watcher) workloads(ctx context.Context) ([]workload, error) {
	sel := metav1.ListOptions{LabelSelector: instanceLabel + "=" + w.release}
	deps, err := w.kube.AppsV1().Deployments(w.namespace).List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	sts, err := w.kube.AppsV1().StatefulSets(w.namespace).List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list statefulsets: %w", err)
	}
	var out []workload
	for i := range deps.Items {
		out = append(out, deploymentState(&deps.Items[i]))
	}
	for i := range sts.Items {
		out = append(out, statefulSetState(&sts.Items[i]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].kind+out[i].name < out[j].kind+out[j].name })
	return out, nil
}

func deploymentState(d *appsv1.Deployment) workload {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	done := s.ObservedGeneration >= d.Generation &&
		s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want
	return workload{kind: "Deployment", name: d.Name, ready: s.AvailableReplicas, desired: want, done: done}
}

func statefulSetState(st *appsv1.StatefulSet) workload {
	want := int32(1)
	if st.Spec.Replicas != nil {
		want = *st.Spec.Replicas
	}
	s := st.Status
	done := s.ObservedGeneration >= st.Generation &&
		s.UpdatedReplicas == want && s.ReadyReplicas == want &&
		(s.UpdateRevision == "" || s.CurrentRevision == s.UpdateRevision)
	return workload{kind: "StatefulSet", name: st.Name, ready: s.ReadyReplicas, desired: want, done: done}
}

// explain builds the timeout error: which workloads are not ready, and for
// each unready pod, why (scheduling, image pull, crash, probes) plus its
// warning events.
func (w *watcher) explain(ctx context.Context, timeout time.Duration, ws []workload) error {
	var b strings.Builder
	fmt.Fprintf(&b, "release %s not ready after %s", w.release, timeout)
	for _, x := range ws {
		if !x.done {
			fmt.Fprintf(&b, "\n  %s not ready", x)
		}
	}
	pods, err := w.kube.CoreV1().Pods(w.namespace).List(ctx, metav1.ListOptions{LabelSelector: instanceLabel + "=" + w.release})
	if err != nil {
		return fmt.Errorf("%w: %s (and listing pods failed: %v)", ErrRolloutTimeout, b.String(), err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		evs, err := w.kube.CoreV1().Events(w.namespace).List(ctx, metav1.ListOptions{
			FieldSelector: fields.AndSelectors(
				fields.OneTermEqualSelector("involvedObject.name", p.Name),
				fields.OneTermEqualSelector("type", corev1.EventTypeWarning),
			).String(),
		})
		if err != nil {
			evs = &corev1.EventList{}
		}
		// The same diagnoser as doctor's cluster.workloads check.
		pr, ok := facts.DiagnosePod(p, evs.Items)
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "\n  %s", pr)
		for _, e := range pr.Evidence {
			fmt.Fprintf(&b, "\n    %s", e)
		}
		seen := map[string]bool{}
		for _, e := range pr.Evidence {
			seen[e] = true
		}
		for _, e := range evs.Items {
			line := e.Reason + ": " + strings.TrimSpace(e.Message)
			if !seen[line] && !slices.ContainsFunc(pr.Evidence, func(ev string) bool { return strings.Contains(ev, line) }) {
				seen[line] = true
				fmt.Fprintf(&b, "\n    event %s", line)
			}
		}
		if pr.Remedy != "" {
			fmt.Fprintf(&b, "\n    fix: %s", pr.Remedy)
		}
	}
	return fmt.Errorf("%w: %s", ErrRolloutTimeout, b.String())
}
