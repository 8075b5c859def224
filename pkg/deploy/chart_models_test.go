package deploy_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestGPUBackendWeightsOnClaim: the GPU backend keeps its weights (HF_HOME
// under /cache) on a PersistentVolumeClaim the chart creates, sized and
// classed from values and kept by helm uninstall; an existing claim is
// mounted instead of creating one; disabled, it is an emptyDir again.
func TestGPUBackendWeightsOnClaim(t *testing.T) {
	for _, tc := range []struct {
		name     string
		set      []string
		claim    string // claim the pod mounts at /cache; "" means emptyDir
		created  bool   // the chart renders the claim
		size, sc string
	}{
		{name: "default", claim: "llmctl-gateway-gpu-models", created: true, size: "50Gi"},
		{name: "sized and classed", set: []string{"gpuBackend.persistence.size=120Gi", "gpuBackend.persistence.storageClass=fast-nvme"},
			claim: "llmctl-gateway-gpu-models", created: true, size: "120Gi", sc: "fast-nvme"},
		{name: "existing claim", set: []string{"gpuBackend.persistence.existingClaim=hf-weights"}, claim: "hf-weights"},
		{name: "disabled", set: []string{"gpuBackend.persistence.enabled=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pvc *corev1.PersistentVolumeClaim
			var dep *appsv1.Deployment
			for _, o := range decode(t, render(t, append(append([]string{}, gpuValues...), tc.set...)...)) {
				switch o := o.(type) {
				case *corev1.PersistentVolumeClaim:
					pvc = o
				case *appsv1.Deployment:
					if o.Name == "llmctl-gateway-gpu" {
						dep = o
					}
				}
			}
			if dep == nil {
				t.Fatal("no GPU backend Deployment")
			}
			if (pvc != nil) != tc.created {
				t.Fatalf("claim rendered = %v, want %v", pvc != nil, tc.created)
			}
			if pvc != nil {
				if pvc.Name != tc.claim || pvc.Spec.Resources.Requests.Storage().String() != tc.size ||
					pvc.Annotations["helm.sh/resource-policy"] != "keep" || pvc.Labels["app.kubernetes.io/instance"] != "llmctl" {
					t.Errorf("claim %s: %+v %v %v", pvc.Name, pvc.Spec.Resources.Requests, pvc.Annotations, pvc.Labels)
				}
				if got := pvc.Spec.StorageClassName; (tc.sc == "") != (got == nil) || (got != nil && *got != tc.sc) {
					t.Errorf("storage class %v, want %q", got, tc.sc)
				}
			}
			var cache *corev1.Volume
			for i, v := range dep.Spec.Template.Spec.Volumes {
				if v.Name == "cache" {
					cache = &dep.Spec.Template.Spec.Volumes[i]
				}
			}
			switch {
			case cache == nil:
				t.Fatal("no cache volume")
			case tc.claim == "" && cache.EmptyDir == nil:
				t.Errorf("cache volume %+v, want emptyDir", cache.VolumeSource)
			case tc.claim != "" && (cache.PersistentVolumeClaim == nil || cache.PersistentVolumeClaim.ClaimName != tc.claim):
				t.Errorf("cache volume %+v, want claim %s", cache.VolumeSource, tc.claim)
			}
		})
	}
}
