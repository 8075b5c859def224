package facts

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Problem is why one pod is not serving (or, for a controller's event, why
// its pods are not even created), in the user's terms, with the fix.
type Problem struct {
	// Object is "pod NAME", or "KIND NAME" for a controller's event.
	Object string
	// Degraded marks a pod that runs but is not Ready, or is terminating:
	// worth a warning, not a failure.
	Degraded bool
	// Summary is one line: what is wrong.
	Summary  string
	Evidence []string
	Remedy   string
}

func (p Problem) String() string { return p.Object + ": " + p.Summary }

// knownFailure is a message seen in an event or a scheduler condition, what
// it means and the fix.
type knownFailure struct {
	pattern, meaning, remedy string
}

// eventFailures are the GPU-specific failures Kubernetes reports as text.
var eventFailures = []knownFailure{
	{"Insufficient " + string(GPUResource), "no node has a free " + string(GPUResource),
		"the GPU is taken or not advertised (`llmctl doctor` checks the device plugin and node labels); on one GPU run one GPU pod (or enable time-slicing in the device plugin)"},
	{`no runtime for "` + RuntimeHandler + `" is configured`, "the node's containerd has no " + RuntimeHandler + " runtime",
		"install nvidia-container-toolkit and restart K3s so it registers the runtime, or add it through " + K3sContainerdDir + "/config.toml.tmpl (`llmctl doctor` checks runtime.k3s-containerd)"},
	{`RuntimeClass "` + RuntimeClass + `" not found`, "pods ask for RuntimeClass " + RuntimeClass + ", which does not exist",
		"create it: `llmctl up --gpu` or `llmctl doctor --fix` (RuntimeClass " + RuntimeClass + ", handler " + RuntimeHandler + ")"},
}

func matchFailure(text string) (knownFailure, bool) {
	for _, k := range eventFailures {
		if strings.Contains(text, k.pattern) {
			return k, true
		}
	}
	return knownFailure{}, false
}

// DiagnoseEvent explains a controller's warning event (a ReplicaSet's
// FailedCreate: a pod rejected at admission never exists, only this event
// does). Pod events go to DiagnosePod.
func DiagnoseEvent(ev corev1.Event) (Problem, bool) {
	if ev.InvolvedObject.Kind == "Pod" || ev.Type != corev1.EventTypeWarning {
		return Problem{}, false
	}
	k, ok := matchFailure(ev.Message)
	if !ok {
		return Problem{}, false
	}
	return Problem{Object: ev.InvolvedObject.Kind + " " + ev.InvolvedObject.Name, Summary: k.meaning, Remedy: k.remedy,
		Evidence: []string{fmt.Sprintf("event %s on %s/%s: %s", ev.Reason, ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Message)}}, true
}

// DiagnosePod says why p is not Running and Ready, from its status and its
// events; false when it is healthy (or finished). The most specific cause
// wins: a waiting container's reason, then a known event, then the phase.
func DiagnosePod(p *corev1.Pod, events []corev1.Event) (Problem, bool) {
	obj := "pod " + p.Name
	describe := "`kubectl describe pod -n " + p.Namespace + " " + p.Name + "` shows the events"
	if p.DeletionTimestamp != nil {
		return Problem{Object: obj, Degraded: true, Summary: "terminating",
			Remedy: "wait for it to stop; if it stays, its node is gone or a finalizer holds it"}, true
	}
	for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		if pr, ok := containerProblem(p, cs); ok {
			return pr, true
		}
	}
	for _, ev := range events {
		if ev.Type != corev1.EventTypeWarning {
			continue
		}
		if k, ok := matchFailure(ev.Message); ok {
			return Problem{Object: obj, Summary: k.meaning, Remedy: k.remedy,
				Evidence: []string{fmt.Sprintf("pod %s event %s: %s", p.Name, ev.Reason, ev.Message)}}, true
		}
	}
	switch p.Status.Phase {
	case corev1.PodPending:
		for _, c := range p.Status.Conditions {
			if c.Type != corev1.PodScheduled || c.Status != corev1.ConditionFalse {
				continue
			}
			ev := fmt.Sprintf("pod %s: %s", p.Name, strings.TrimSpace(c.Reason+": "+c.Message))
			// The scheduler's condition says what its event says, and is
			// there before the event is listed.
			if k, ok := matchFailure(c.Message); ok {
				return Problem{Object: obj, Summary: k.meaning, Evidence: []string{ev}, Remedy: k.remedy}, true
			}
			return Problem{Object: obj, Summary: "unschedulable: " + strings.TrimSpace(c.Message), Evidence: []string{ev},
				Remedy: "no node fits its requests, node selector, affinity or tolerations: " + describe}, true
		}
		return Problem{Object: obj, Summary: "Pending (not scheduled or not started)",
			Evidence: []string{fmt.Sprintf("pod %s: phase Pending", p.Name)}, Remedy: describe}, true
	case corev1.PodFailed:
		return Problem{Object: obj, Summary: "Failed",
			Evidence: []string{fmt.Sprintf("pod %s: %s %s", p.Name, p.Status.Reason, p.Status.Message)}, Remedy: describe}, true
	case corev1.PodRunning:
		if podReady(p) {
			return Problem{}, false
		}
		var unready []string
		for _, cs := range p.Status.ContainerStatuses {
			if !cs.Ready {
				unready = append(unready, cs.Name)
			}
		}
		return Problem{Object: obj, Degraded: true, Summary: "Running but not Ready",
			Evidence: []string{fmt.Sprintf("pod %s: unready containers: %s (%s)", p.Name, strings.Join(unready, ", "), readyWhy(p))},
			Remedy:   "its readiness probe fails: a model still loading (raise initialDelaySeconds/startupProbe) or a backend it cannot reach; " + describe}, true
	}
	return Problem{}, false
}

// containerProblem diagnoses one container's state.
func containerProblem(p *corev1.Pod, cs corev1.ContainerStatus) (Problem, bool) {
	obj := "pod " + p.Name
	last := cs.LastTerminationState.Terminated
	if t := cs.State.Terminated; t != nil && oomKilled(t) {
		// restartPolicy Never/OnFailure-exhausted: it stays terminated.
		last = t
	}
	if w := cs.State.Waiting; w != nil {
		switch w.Reason {
		case "CrashLoopBackOff":
			pr := Problem{Object: obj, Summary: fmt.Sprintf("container %s in CrashLoopBackOff", cs.Name),
				Evidence: []string{fmt.Sprintf("pod %s container %s: CrashLoopBackOff, %d restarts", p.Name, cs.Name, cs.RestartCount)},
				Remedy:   "read why it exits: `kubectl logs -n " + p.Namespace + " " + p.Name + " -c " + cs.Name + " --previous`"}
			if last != nil {
				pr.Evidence = append(pr.Evidence, fmt.Sprintf("last termination: reason %s, exit code %d", last.Reason, last.ExitCode))
				if oomKilled(last) {
					pr.Summary += " (OOMKilled)"
					pr.Remedy = oomRemedy
				}
			}
			return pr, true
		case "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull":
			return Problem{Object: obj, Summary: "cannot pull image " + imageOf(p, cs.Name),
				Evidence: []string{fmt.Sprintf("pod %s container %s: %s: %s", p.Name, cs.Name, w.Reason, w.Message)},
				Remedy:   "check the image name and tag, the registry's reachability from the node (`sudo k3s crictl pull IMAGE`) and imagePullSecrets; an image built locally must be imported into the node's containerd (`sudo k3s ctr images import`)"}, true
		case "CreateContainerConfigError", "CreateContainerError", "RunContainerError":
			return Problem{Object: obj, Summary: w.Reason,
				Evidence: []string{fmt.Sprintf("pod %s container %s: %s: %s", p.Name, cs.Name, w.Reason, w.Message)},
				Remedy:   "a missing Secret/ConfigMap key or a bad command or security context: `kubectl describe pod -n " + p.Namespace + " " + p.Name + "`"}, true
		}
	}
	if t := cs.State.Terminated; t != nil && oomKilled(t) {
		return Problem{Object: obj, Summary: fmt.Sprintf("container %s OOMKilled", cs.Name),
			Evidence: []string{fmt.Sprintf("pod %s container %s: terminated, reason %s, exit code %d", p.Name, cs.Name, t.Reason, t.ExitCode)},
			Remedy:   oomRemedy}, true
	}
	if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && p.Status.Phase == corev1.PodRunning {
		// Between a crash and the kubelet's next sync the container shows
		// as terminated, not yet CrashLoopBackOff: the same failure, seen
		// a moment earlier (a crash loop spends seconds in this state).
		return Problem{Object: obj, Summary: fmt.Sprintf("container %s exited with code %d and is being restarted", cs.Name, t.ExitCode),
			Evidence: []string{fmt.Sprintf("pod %s container %s: %d restarts", p.Name, cs.Name, cs.RestartCount),
				fmt.Sprintf("last termination: reason %s, exit code %d", t.Reason, t.ExitCode)},
			Remedy: "read why it exits: `kubectl logs -n " + p.Namespace + " " + p.Name + " -c " + cs.Name + " --previous`"}, true
	}
	return Problem{}, false
}

const oomRemedy = "the container ran out of memory (exit 137): raise its memory limit, or load a smaller model/quantization or a shorter context (`llmctl doctor --model` sizes it)"

func oomKilled(t *corev1.ContainerStateTerminated) bool {
	return t.Reason == "OOMKilled" || t.ExitCode == 137
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func readyWhy(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return strings.TrimSpace("Ready=" + string(c.Status) + " " + c.Reason + " " + c.Message)
		}
	}
	return "no Ready condition"
}

func imageOf(p *corev1.Pod, container string) string {
	for _, c := range slices.Concat(p.Spec.InitContainers, p.Spec.Containers) {
		if c.Name == container {
			return c.Image
		}
	}
	return "?"
}
