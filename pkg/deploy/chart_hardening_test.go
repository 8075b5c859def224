package deploy_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/llmctl/llmctl/pkg/deploy"
	"github.com/llmctl/llmctl/pkg/serve/config"
)

func gatewaySet(t *testing.T, objs []any) *appsv1.StatefulSet {
	t.Helper()
	for _, o := range objs {
		if d, ok := o.(*appsv1.Deployment); ok && d.Name == "llmctl-gateway" {
			t.Fatal("the gateway is a Deployment: its per-replica volume needs a StatefulSet")
		}
		if s, ok := o.(*appsv1.StatefulSet); ok && s.Name == "llmctl-gateway" {
			return s
		}
	}
	t.Fatal("no llmctl-gateway StatefulSet")
	return nil
}

// The ledger's spool (and SQLite) survive the pod: one claim per replica,
// or an emptyDir when persistence is off.
func TestGatewayDataOnVolume(t *testing.T) {
	for _, tc := range []struct {
		set          []string
		claim        bool
		size, class  string
		wantReplicas int32
	}{
		{nil, true, "1Gi", "", 1},
		{[]string{"persistence.size=5Gi", "persistence.storageClass=fast", "replicaCount=3"}, true, "5Gi", "fast", 3},
		{[]string{"persistence.enabled=false"}, false, "", "", 1},
	} {
		t.Run(strings.Join(tc.set, ","), func(t *testing.T) {
			gw := gatewaySet(t, decode(t, render(t, tc.set...)))
			if *gw.Spec.Replicas != tc.wantReplicas || gw.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
				t.Errorf("replicas %d, update strategy %q", *gw.Spec.Replicas, gw.Spec.UpdateStrategy.Type)
			}
			if p := gw.Spec.Template.Spec.SecurityContext.FSGroupChangePolicy; p == nil || *p != corev1.FSGroupChangeOnRootMismatch {
				t.Errorf("fsGroupChangePolicy %v: kubelet would reopen the database file to the group on every mount", p)
			}
			c := gw.Spec.Template.Spec.Containers[0]
			mounted := false
			for _, m := range c.VolumeMounts {
				mounted = mounted || m.Name == "data" && m.MountPath == "/data"
			}
			if !mounted || !reflect.DeepEqual(c.Env[0], corev1.EnvVar{Name: "XDG_DATA_HOME", Value: "/data"}) {
				t.Errorf("data volume not mounted where the gateway keeps its spool: %v %v", c.VolumeMounts, c.Env[0])
			}
			var emptyDir bool
			for _, v := range gw.Spec.Template.Spec.Volumes {
				emptyDir = emptyDir || v.Name == "data" && v.EmptyDir != nil
			}
			if !tc.claim {
				if len(gw.Spec.VolumeClaimTemplates) != 0 || !emptyDir {
					t.Errorf("persistence off: claims %v, data emptyDir %v", gw.Spec.VolumeClaimTemplates, emptyDir)
				}
				return
			}
			if emptyDir || len(gw.Spec.VolumeClaimTemplates) != 1 {
				t.Fatalf("persistence on: data emptyDir %v, claims %v", emptyDir, gw.Spec.VolumeClaimTemplates)
			}
			pvc := gw.Spec.VolumeClaimTemplates[0]
			class := ""
			if pvc.Spec.StorageClassName != nil {
				class = *pvc.Spec.StorageClassName
			}
			if pvc.Name != "data" || pvc.Spec.AccessModes[0] != corev1.ReadWriteOnce || pvc.Spec.Resources.Requests.Storage().String() != tc.size || class != tc.class {
				t.Errorf("claim %s %v %s class %q", pvc.Name, pvc.Spec.AccessModes, pvc.Spec.Resources.Requests.Storage(), class)
			}
			// down lists and purges claims by this label.
			if pvc.Labels["app.kubernetes.io/instance"] != "llmctl" {
				t.Errorf("claim labels %v lack the release's instance label", pvc.Labels)
			}
		})
	}
}

// Kubernetes waits for the gateway to drain and flush its ledger before
// SIGKILL, and the gateway is told the same grace.
func TestTerminationGrace(t *testing.T) {
	for _, tc := range []struct {
		set       []string
		pod       int64
		grace     time.Duration
		wantError string
	}{
		{nil, 45, 30 * time.Second, ""},
		{[]string{"gateway.shutdownGraceSeconds=60"}, 75, time.Minute, ""},
		{[]string{"gateway.terminationGracePeriodSeconds=120"}, 120, 30 * time.Second, ""},
		{[]string{"gateway.terminationGracePeriodSeconds=35"}, 0, 0, "gateway.terminationGracePeriodSeconds (35) must be at least"},
		// Draining (30) + the 2 s cut-off + the 10 s ledger flush.
		{[]string{"gateway.terminationGracePeriodSeconds=41"}, 0, 0, "must be at least gateway.shutdownGraceSeconds + 12 (42)"},
		{[]string{"gateway.terminationGracePeriodSeconds=42"}, 42, 30 * time.Second, ""},
		{[]string{"gateway.config.shutdownGrace=10s"}, 0, 0, "set gateway.shutdownGraceSeconds"},
	} {
		t.Run(strings.Join(tc.set, ","), func(t *testing.T) {
			vals, err := deploy.Values(nil, tc.set)
			if err != nil {
				t.Fatal(err)
			}
			out, err := deploy.Render(loadChart(t), deploy.RenderOptions{Release: "llmctl", Namespace: "llmctl", Values: vals})
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("want an error containing %q, got %v", tc.wantError, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			objs := decode(t, out)
			if got := gatewaySet(t, objs).Spec.Template.Spec.TerminationGracePeriodSeconds; got == nil || *got != tc.pod {
				t.Errorf("terminationGracePeriodSeconds = %v, want %d", got, tc.pod)
			}
			// The gateway reads the ConfigMap as its config file.
			var cfg config.Config
			for _, o := range objs {
				if cm, ok := o.(*corev1.ConfigMap); ok {
					if err := cfg.MergeFile("configmap", strings.NewReader(cm.Data["config.yaml"])); err != nil {
						t.Fatal(err)
					}
				}
			}
			if cfg.ShutdownGrace != tc.grace {
				t.Errorf("gateway shutdownGrace = %v, want %v", cfg.ShutdownGrace, tc.grace)
			}
		})
	}
}

func gatewayPolicy(t *testing.T, set ...string) *networkingv1.NetworkPolicy {
	t.Helper()
	for _, o := range decode(t, render(t, set...)) {
		if np, ok := o.(*networkingv1.NetworkPolicy); ok && np.Name == "llmctl-gateway" {
			return np
		}
	}
	t.Fatal("no llmctl-gateway NetworkPolicy")
	return nil
}

// rule writes a policy rule as "peer|peer ports": peers as cidr:X, ns:SEL,
// pod:SEL (ANDed with &), "*" for any destination.
func rule(peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) string {
	var ps []string
	for _, p := range peers {
		var and []string
		if p.IPBlock != nil {
			and = append(and, "cidr:"+p.IPBlock.CIDR)
		}
		if p.NamespaceSelector != nil {
			and = append(and, "ns:"+metav1.FormatLabelSelector(p.NamespaceSelector))
		}
		if p.PodSelector != nil {
			and = append(and, "pod:"+metav1.FormatLabelSelector(p.PodSelector))
		}
		ps = append(ps, strings.Join(and, "&"))
	}
	if len(ps) == 0 {
		ps = []string{"*"}
	}
	var pts []string
	for _, p := range ports {
		pts = append(pts, fmt.Sprintf("%s/%s", *p.Protocol, p.Port.String()))
	}
	return strings.Join(ps, "|") + " " + strings.Join(pts, ",")
}

func component(c string) string {
	return "pod:app.kubernetes.io/component=" + c + ",app.kubernetes.io/instance=llmctl,app.kubernetes.io/name=llmctl-gateway"
}

// The gateway may reach DNS, its database, Redis and its backends, and
// nothing else unless networkPolicy.egress says so.
func TestGatewayEgressPolicy(t *testing.T) {
	dns := "ns:kubernetes.io/metadata.name=kube-system&pod:k8s-app=kube-dns UDP/53,TCP/53"
	pg, redis := component("postgresql")+" TCP/5432", component("redis")+" TCP/6379"
	for _, tc := range []struct {
		name string
		set  []string
		want []string
	}{
		{"default", nil, []string{dns, pg, redis}},
		{"gpu", gpuValues, []string{dns, pg, redis, component("backend") + " TCP/8000"}},
		{"backends", []string{
			"gateway.backends[0].name=a", "gateway.backends[0].url=https://api.example.com/v1",
			"gateway.backends[1].name=b", "gateway.backends[1].url=http://10.1.2.3:8001",
			"gateway.backends[2].name=c", "gateway.backends[2].url=http://ollama.ollama.svc:11434",
			"gateway.backends[3].name=d", "gateway.backends[3].url=http://plain.example.com",
		}, []string{dns, pg, redis,
			"* TCP/443",
			"cidr:10.1.2.3/32 TCP/8001",
			"ns:kubernetes.io/metadata.name=ollama TCP/11434",
			"* TCP/80"}},
		{"external", []string{
			"postgresql.enabled=false", "externalDatabase.url=postgres://u:hunter2@db.example.com:6543/llmctl",
			"redis.enabled=false", "externalRedis.url=redis://:hunter2@10.0.0.5:6380/0",
		}, []string{dns, "* TCP/6543", "cidr:10.0.0.5/32 TCP/6380"}},
		{"sqlite, in-process limits", []string{"postgresql.enabled=false", "redis.enabled=false"}, []string{dns}},
		{"extra", []string{
			"networkPolicy.egress.extra[0].cidr=192.0.2.0/24", "networkPolicy.egress.extra[0].ports={443,8443}",
			"networkPolicy.egress.extra[1].cidr=198.51.100.7/32", "networkPolicy.egress.extra[1].ports={514}", "networkPolicy.egress.extra[1].protocol=UDP",
		}, []string{dns, pg, redis, "cidr:192.0.2.0/24 TCP/443,TCP/8443", "cidr:198.51.100.7/32 UDP/514"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			np := gatewayPolicy(t, tc.set...)
			if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
				t.Errorf("policyTypes %v", np.Spec.PolicyTypes)
			}
			var got []string
			for _, r := range np.Spec.Egress {
				got = append(got, rule(r.To, r.Ports))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("egress rules:\n got %q\nwant %q", got, tc.want)
			}
			if b, _ := json.Marshal(np); strings.Contains(string(b), "hunter2") {
				t.Error("a database password landed in the NetworkPolicy")
			}
		})
	}
	np := gatewayPolicy(t, "networkPolicy.egress.enabled=false")
	if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) || len(np.Spec.Egress) != 0 {
		t.Errorf("egress disabled: policyTypes %v, egress %v", np.Spec.PolicyTypes, np.Spec.Egress)
	}
}

// /metrics on the admin port takes pods of this namespace and, by label, a
// Prometheus in another one; the API port takes anyone.
func TestMetricsIngressPolicy(t *testing.T) {
	same := "pod:<none>"
	for _, tc := range []struct {
		name string
		set  []string
		want string
	}{
		{"default", nil, same + "|ns:kubernetes.io/metadata.name=monitoring&pod:app.kubernetes.io/name=prometheus TCP/metrics"},
		{"own labels", []string{
			"networkPolicy.metrics.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=obs",
			"networkPolicy.metrics.podSelector.matchLabels.app=prom",
		}, same + "|ns:kubernetes.io/metadata.name=obs&pod:app=prom,app.kubernetes.io/name=prometheus TCP/metrics"},
		{"any pod of a namespace", []string{"networkPolicy.metrics.podSelector=null"}, same + "|ns:kubernetes.io/metadata.name=monitoring TCP/metrics"},
		{"this namespace only", []string{"networkPolicy.metrics.namespaceSelector=null"}, same + " TCP/metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			np := gatewayPolicy(t, tc.set...)
			if len(np.Spec.Ingress) != 2 {
				t.Fatalf("ingress rules %v", np.Spec.Ingress)
			}
			if got := rule(np.Spec.Ingress[0].From, np.Spec.Ingress[0].Ports); got != "* TCP/http" {
				t.Errorf("API rule %q", got)
			}
			if got := rule(np.Spec.Ingress[1].From, np.Spec.Ingress[1].Ports); got != tc.want {
				t.Errorf("metrics rule\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
