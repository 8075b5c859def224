package facts_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

func waiting(name, reason, msg string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
}

func warning(reason, msg string) corev1.Event {
	return corev1.Event{Type: corev1.EventTypeWarning, Reason: reason, Message: msg}
}

// TestDiagnosePod: each way a pod fails, its one-line summary and the
// remedy's key words; doctor's cluster.workloads and up --wait's timeout
// both print these.
func TestDiagnosePod(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	ready := []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	now := metav1.Now()
	for _, tc := range []struct {
		name     string
		pod      corev1.Pod
		events   []corev1.Event
		summary  string // "" means healthy
		remedy   string
		degraded bool
	}{
		{name: "ready", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: ready,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Ready: true, State: running}}}}},
		{name: "succeeded", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}},
		{name: "crash loop", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{func() corev1.ContainerStatus {
			cs := waiting("gateway", "CrashLoopBackOff", "back-off 10s")
			cs.RestartCount = 3
			cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}
			return cs
		}()}}},
			summary: "container gateway in CrashLoopBackOff", remedy: "--previous"},
		{name: "oom crash loop", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{func() corev1.ContainerStatus {
			cs := waiting("backend", "CrashLoopBackOff", "")
			cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}
			return cs
		}()}}},
			summary: "container backend in CrashLoopBackOff (OOMKilled)", remedy: "raise its memory limit"},
		{name: "crashed, not yet in back-off", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "gateway", RestartCount: 4,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}}}},
			summary: "container gateway exited with code 1 and is being restarted", remedy: "--previous"},
		{name: "oom, never restarted", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: "job",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}}},
			summary: "container job OOMKilled", remedy: "memory limit"},
		{name: "image pull backoff", pod: corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "gateway", Image: "example.invalid/x:1"}}},
			Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{waiting("gateway", "ImagePullBackOff", `Back-off pulling image "example.invalid/x:1"`)}}},
			summary: "cannot pull image example.invalid/x:1", remedy: "crictl pull"},
		{name: "err image pull", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{waiting("gateway", "ErrImagePull", "not found")}}},
			summary: "cannot pull image ?", remedy: "ctr images import"},
		{name: "config error", pod: corev1.Pod{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{waiting("gateway", "CreateContainerConfigError", `secret "llmctl-admin" not found`)}}},
			summary: "CreateContainerConfigError", remedy: "Secret"},
		{name: "insufficient gpu", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}}}},
			summary: "no node has a free nvidia.com/gpu", remedy: "time-slicing"},
		{name: "unschedulable otherwise", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."}}}},
			summary: "unschedulable: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.", remedy: "node selector"},
		{name: "no nvidia runtime on the node", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}},
			events:  []corev1.Event{warning("FailedCreatePodSandBox", `failed to get sandbox runtime: no runtime for "nvidia" is configured`)},
			summary: "the node's containerd has no nvidia runtime", remedy: "nvidia-container-toolkit"},
		{name: "normal events are not problems", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: ready}},
			events: []corev1.Event{{Type: corev1.EventTypeNormal, Message: `no runtime for "nvidia" is configured`}}},
		{name: "pending, creating", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{waiting("c", "ContainerCreating", "")}}},
			summary: "Pending (not scheduled or not started)", remedy: "kubectl describe pod"},
		{name: "readiness failing", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady"}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "gateway", State: running}}}},
			summary: "Running but not Ready", remedy: "readiness probe", degraded: true},
		{name: "terminating", pod: corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}, Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: ready}},
			summary: "terminating", remedy: "finalizer", degraded: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.pod.Name, tc.pod.Namespace = "p", "ns"
			pr, ok := facts.DiagnosePod(&tc.pod, tc.events)
			if tc.summary == "" {
				if ok {
					t.Fatalf("healthy pod diagnosed: %+v", pr)
				}
				return
			}
			if !ok || pr.Summary != tc.summary || !strings.Contains(pr.Remedy, tc.remedy) || pr.Degraded != tc.degraded || pr.Object != "pod p" {
				t.Errorf("got %+v\nwant summary %q, remedy with %q, degraded %v", pr, tc.summary, tc.remedy, tc.degraded)
			}
		})
	}
}

func TestDiagnoseEvent(t *testing.T) {
	ev := warning("FailedCreate", `Error creating: pods "backend-5d4f9-" is forbidden: pod rejected: RuntimeClass "nvidia" not found`)
	ev.InvolvedObject = corev1.ObjectReference{Kind: "ReplicaSet", Name: "backend-5d4f9"}
	pr, ok := facts.DiagnoseEvent(ev)
	if !ok || pr.String() != "ReplicaSet backend-5d4f9: pods ask for RuntimeClass nvidia, which does not exist" || !strings.Contains(pr.Remedy, "llmctl up --gpu") {
		t.Errorf("%+v", pr)
	}
	ev.InvolvedObject.Kind = "Pod" // pods' events go with the pod
	if _, ok := facts.DiagnoseEvent(ev); ok {
		t.Error("pod event diagnosed on its own")
	}
	other := warning("FailedCreate", "quota exceeded")
	other.InvolvedObject.Kind = "ReplicaSet"
	if _, ok := facts.DiagnoseEvent(other); ok {
		t.Error("an unknown event was explained")
	}
}
