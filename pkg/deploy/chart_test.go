package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/llmctl/llmctl/pkg/deploy"
)

var update = flag.Bool("update", false, "rewrite golden files")

// chartDir is the chart on disk, for helm's linter (which reads paths).
const chartDir = "../../charts/llmctl-gateway"

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := deploy.LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func render(t *testing.T, set ...string) string {
	t.Helper()
	vals, err := deploy.Values(nil, set)
	if err != nil {
		t.Fatal(err)
	}
	out, err := deploy.Render(loadChart(t), deploy.RenderOptions{Release: "llmctl", Namespace: "llmctl", Values: vals})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// gpuValues enable the GPU backend as a user would on a one-GPU box.
var gpuValues = []string{"gpuBackend.enabled=true", "gpuBackend.gpus=1"}

func TestRenderGolden(t *testing.T) {
	for name, set := range map[string][]string{"default": nil, "gpu": gpuValues} {
		t.Run(name, func(t *testing.T) {
			got := render(t, set...)
			path := filepath.Join("testdata", "golden", name+".yaml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("rendered manifests differ from %s (go test ./pkg/deploy -run TestRenderGolden -update to accept):\n%s", path, firstDiff(string(want), got))
			}
		})
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + strconv.Itoa(i+1) + ":\n- " + x + "\n+ " + y
		}
	}
	return ""
}

// decode parses a multi-document manifest into typed objects.
func decode(t *testing.T, manifest string) []any {
	t.Helper()
	var out []any
	r := yaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || strings.TrimSpace(strings.TrimPrefix(string(doc), "---")) == "" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			// ServiceMonitor is not in client-go's scheme: keep it as text.
			out = append(out, string(doc))
			continue
		}
		out = append(out, obj)
	}
	return out
}

// The manifests are hardened and GPU requests live only on the GPU pod.
func TestRenderedPodsAreHardened(t *testing.T) {
	objs := decode(t, render(t, gpuValues...))
	var pods []corev1.PodSpec
	var names []string
	for _, o := range objs {
		switch x := o.(type) {
		case *appsv1.Deployment:
			pods, names = append(pods, x.Spec.Template.Spec), append(names, x.Name)
		case *appsv1.StatefulSet:
			pods, names = append(pods, x.Spec.Template.Spec), append(names, x.Name)
		}
	}
	if len(pods) != 4 {
		t.Fatalf("want gateway, GPU backend, PostgreSQL and Redis workloads, got %v", names)
	}
	for i, p := range pods {
		sc := p.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod security context not hardened: %+v", names[i], sc)
		}
		for _, c := range p.Containers {
			cs := c.SecurityContext
			if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem ||
				cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
				cs.Capabilities == nil || len(cs.Capabilities.Drop) != 1 || cs.Capabilities.Drop[0] != "ALL" {
				t.Errorf("%s/%s: container not hardened: %+v", names[i], c.Name, cs)
			}
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s/%s: missing probes", names[i], c.Name)
			}
			if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s/%s: memory request and limit are required at container level", names[i], c.Name)
			}
			_, hasGPU := c.Resources.Limits["nvidia.com/gpu"]
			isGPU := strings.HasSuffix(names[i], "-gpu")
			if hasGPU != isGPU {
				t.Errorf("%s/%s: nvidia.com/gpu limit present=%v, want %v", names[i], c.Name, hasGPU, isGPU)
			}
		}
		rc := ""
		if p.RuntimeClassName != nil {
			rc = *p.RuntimeClassName
		}
		if want := map[bool]string{true: "nvidia", false: ""}[strings.HasSuffix(names[i], "-gpu")]; rc != want {
			t.Errorf("%s: runtimeClassName %q, want %q", names[i], rc, want)
		}
	}
	c := gatewaySet(t, objs).Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("gateway probes: readiness %+v liveness %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	if !contains(c.Args, "--backend=gpu=http://llmctl-gateway-gpu:8000") {
		t.Errorf("gateway is not pointed at the GPU backend: %v", c.Args)
	}
	for _, e := range c.Env {
		if e.Value != "" && (strings.Contains(strings.ToLower(e.Name), "key") || strings.Contains(e.Name, "DB") || strings.Contains(e.Name, "SECRET")) {
			t.Errorf("secret %s passed as a plain value", e.Name)
		}
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func TestServiceMonitorOnlyWithOperator(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct {
		apis []string
		want bool
	}{{nil, false}, {[]string{"monitoring.coreos.com/v1"}, true}} {
		out, err := deploy.Render(ch, deploy.RenderOptions{Release: "r", Namespace: "n", APIVersions: tc.apis})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(out, "kind: ServiceMonitor"); got != tc.want {
			t.Errorf("APIVersions %v: ServiceMonitor rendered=%v, want %v", tc.apis, got, tc.want)
		}
	}
}

func TestIngressClass(t *testing.T) {
	out := render(t)
	if !strings.Contains(out, `ingressClassName: "traefik"`) {
		t.Error("default ingress class is not traefik (K3s)")
	}
	out = render(t, "ingress.className=nginx")
	for _, want := range []string{`ingressClassName: "nginx"`, `nginx.ingress.kubernetes.io/proxy-buffering: "off"`} {
		if !strings.Contains(out, want) {
			t.Errorf("nginx ingress lacks %s", want)
		}
	}
}

func TestSecretsGeneratedOrSupplied(t *testing.T) {
	ch := loadChart(t)
	vals, err := deploy.Values(nil, []string{"secrets.standardWebhookSecret=whsec_c3VwcGxpZWQ="})
	if err != nil {
		t.Fatal(err)
	}
	out, err := deploy.Render(ch, deploy.RenderOptions{Release: "llmctl", Namespace: "llmctl", Values: vals, ShowSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	var sec *corev1.Secret
	for _, o := range decode(t, out) {
		if s, ok := o.(*corev1.Secret); ok {
			sec = s
		}
	}
	if sec == nil {
		t.Fatal("no Secret rendered")
	}
	if got := string(sec.Data["standard-webhook-secret"]); got != "whsec_c3VwcGxpZWQ=" {
		t.Errorf("standard-webhook-secret = %q, want the supplied one", got)
	}
	for _, k := range []string{"postgres-password", "redis-password", "database-url", "redis-url"} {
		if len(sec.Data[k]) < 16 {
			t.Errorf("generated %s too short or missing: %q", k, sec.Data[k])
		}
	}
	if !strings.Contains(string(sec.Data["database-url"]), "@llmctl-gateway-postgresql:5432/llmctl") {
		t.Errorf("database-url does not point at the in-cluster PostgreSQL: %s", sec.Data["database-url"])
	}
	// Without ShowSecrets the rendered output must not carry them.
	if hidden := render(t, "secrets.standardWebhookSecret=whsec_c3VwcGxpZWQ="); strings.Contains(hidden, base64.StdEncoding.EncodeToString([]byte("whsec_c3VwcGxpZWQ="))) {
		t.Error("dry-run output leaks the webhook secret")
	}
	if strings.Contains(out, "kind: ConfigMap") && strings.Contains(strings.SplitN(out[strings.Index(out, "kind: ConfigMap"):], "---", 2)[0], "password") {
		t.Error("ConfigMap mentions a password")
	}
}

func TestSchemaRejectsBadValues(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct {
		set  string
		want string
	}{
		{"replicaCount=two", "replicaCount"},
		{"replicaCount=0", "replicaCount"},
		{"image.pullPolicy=Sometimes", "pullPolicy"},
		{"gpuBackend.gpus=0", "gpus"},
		{"gateway.port=70000", "port"},
		{"ingres.enabled=true", "ingres"},
		{"service.type=Magic", "type"},
		{"gateway.backends[0].name=vllm", "url"},
		{"postgresql.password=has space", "password"},
		{"secrets.standardWebhookSecret=plain", "standardWebhookSecret"},
		{"persistence.size=lots", "size"},
		{"persistence.enable=true", "enable"},
		{"gpuBackend.persistence.size=big", "size"},
		{"gpuBackend.persistence.accessMode=ReadOnce", "accessMode"},
		{"gpuBackend.persistence.existingClaim=Not_A_Name", "existingClaim"},
		{"gateway.shutdownGraceSeconds=0", "shutdownGraceSeconds"},
		{"networkPolicy.egress.extra[0].cidr=example.com", "cidr"},
		{"networkPolicy.egress.extra[0].protocol=ICMP", "protocol"},
		{"networkPolicy.metrics.podSelector.matchLabel.app=x", "matchLabel"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			vals, err := deploy.Values(nil, []string{tc.set})
			if err != nil {
				t.Fatal(err)
			}
			_, err = deploy.Render(ch, deploy.RenderOptions{Release: "r", Namespace: "n", Values: vals})
			if err == nil {
				t.Fatalf("--set %s was accepted", tc.set)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not name %q: %v", tc.want, err)
			}
		})
	}
}

// helm lint, through the SDK's lint action, reports nothing at warning level
// or above, for default and GPU values.
func TestHelmLint(t *testing.T) {
	for name, set := range map[string][]string{"default": nil, "gpu": gpuValues} {
		vals, err := deploy.Values(nil, set)
		if err != nil {
			t.Fatal(err)
		}
		l := action.NewLint()
		l.Strict = true
		l.Namespace = "llmctl"
		res := l.Run([]string{chartDir}, vals)
		if res.TotalChartsLinted != 1 {
			t.Fatalf("%s: linted %d charts", name, res.TotalChartsLinted)
		}
		for _, m := range res.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("%s: lint: %s", name, m)
			}
		}
		for _, err := range res.Errors {
			t.Errorf("%s: lint error: %v", name, err)
		}
	}
}

// The embedded copy is the chart on disk, _helpers.tpl included (a plain
// go:embed would drop it).
func TestEmbeddedChartComplete(t *testing.T) {
	ch := loadChart(t)
	var names []string
	for _, tpl := range ch.Templates {
		names = append(names, tpl.Name)
	}
	if !contains(names, "templates/_helpers.tpl") {
		t.Fatalf("embedded chart lacks templates/_helpers.tpl: %v", names)
	}
	entries, err := os.ReadDir(filepath.Join(chartDir, "templates"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(ch.Templates) {
		t.Errorf("embedded %d templates, %d on disk", len(ch.Templates), len(entries))
	}
	if ch.Schema == nil {
		t.Error("embedded chart has no values.schema.json")
	}
}

// Any --set string either fails with an error or renders; it never panics,
// and what renders has passed the schema.
func FuzzSetValues(f *testing.F) {
	for _, s := range []string{
		"replicaCount=2", "gateway.backends[0].name=a", "gateway.backends[0].url=http://x",
		"ingress.className=nginx", "gpuBackend.enabled=true", "a.b.c=", "=", "x[999999]=1",
		"gateway.config.listen=:1", "secrets.stripeWebhookSecret={a,b}", "image.tag=null",
	} {
		f.Add(s)
	}
	ch, err := deploy.LoadChart()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, set string) {
		vals, err := deploy.Values(nil, []string{set})
		if err != nil {
			return
		}
		out, err := deploy.Render(ch, deploy.RenderOptions{Release: "r", Namespace: "n", Values: vals})
		if err == nil && !strings.Contains(out, "# Source: llmctl-gateway/templates/statefulset.yaml\napiVersion: apps/v1\nkind: StatefulSet") {
			t.Fatalf("--set %q rendered without the gateway StatefulSet", set)
		}
	})
}
