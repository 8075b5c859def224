package deploy_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/llmctl/llmctl/pkg/deploy"
)

func TestPodProblems(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	for _, tc := range []struct {
		name string
		pod  corev1.PodStatus
		want string // "" means no problem
	}{
		{"ready", corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Ready: true, State: running}}}, ""},
		{"unschedulable", corev1.PodStatus{Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}}},
			"unschedulable: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu."},
		{"image pull", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "gateway",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "x"`}}}}},
			`container gateway ImagePullBackOff: Back-off pulling image "x"`},
		{"oom crash loop", corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "backend", RestartCount: 4,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}},
			"container backend CrashLoopBackOff; container backend last exited 137 (OOMKilled), restarts 4"},
		{"probe failing", corev1.PodStatus{Phase: corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "gateway", State: running}}},
			"container gateway running but not ready (readiness probe failing)"},
		{"creating", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "c",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}},
			"phase Pending, not ready"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(deploy.PodProblems(&corev1.Pod{Status: tc.pod}), "; ")
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
