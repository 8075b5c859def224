package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/llmctl/llmctl/internal/kubetest"
	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/deploy"
	"github.com/llmctl/llmctl/pkg/deploy/image"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// gatewayImage builds the gateway image as `make image` does (a static
// llmctl, pkg/deploy/image, the chart's tag) and imports it into n.
func gatewayImage(t *testing.T, n *kubetest.RealNode) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "llmctl")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "github.com/llmctl/llmctl/cmd/llmctl")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ch, err := deploy.LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := ch.Values["image"].(map[string]any)["repository"].(string)
	img, err := image.Build(image.Options{Binary: bin, Version: ch.Metadata.AppVersion})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "image.tar")
	if err := image.WriteTarball(archive, repo+":"+ch.Metadata.AppVersion, img); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := n.ImportImage(ctx, archive); err != nil {
		t.Fatal(err)
	}
}

// `llmctl up` on a node that runs containers: the gateway image from `make
// image` (pullPolicy Never: the imported one or nothing), external
// PostgreSQL and Redis on the host, the gateway passing its real probes as
// uid 65532 on a read-only root, a chat completion to the pod answered and
// billed in PostgreSQL, a no-op second up, a rolled-out values change, an
// image the node lacks explained by up's timeout, down.
// The gateway's /data is an emptyDir here: the cluster has no volume
// provisioner, and a hostPath volume would not honour the pod's fsGroup.
func TestUpOnRealNode(t *testing.T) {
	e := newEnv(t, "realnode")
	n := e.c.RealNode(t)
	gatewayImage(t, n)
	pg := testenv.PG(t)
	dsn := pg.NewDatabase(t)
	rd := testenv.RD(t)
	dbName := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	pgAddr := n.ExposeHost(t, fmt.Sprintf("127.0.0.1:%d", pg.Port))
	rdAddr := n.ExposeHost(t, rd.Addr())

	set := []string{
		"image.pullPolicy=Never",
		`nodeSelector.kubernetes\.io/hostname=` + n.Name,
		"tolerations[0].key=" + kubetest.RealNodeTaint,
		"tolerations[0].operator=Exists",
		"tolerations[0].effect=NoSchedule",
		"postgresql.enabled=false",
		"externalDatabase.url=postgres://postgres@" + pgAddr + "/" + dbName + "?sslmode=disable",
		"redis.enabled=false",
		"externalRedis.url=redis://" + rdAddr + "/0",
		"persistence.enabled=false",
		// 1 and 3 micro-units a token, 7 a request: the debit is exact.
		"gateway.prices.models." + engine.DemoName + ".input=1000000",
		"gateway.prices.models." + engine.DemoName + ".output=3000000",
		"gateway.prices.models." + engine.DemoName + ".perRequest=7",
	}
	began := time.Now()
	res, err := e.up(t, 3*time.Minute, io.Discard, set...)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Logf("up → gateway Ready on the real node: %s", time.Since(began).Round(time.Millisecond))
	if res.Action != "installed" {
		t.Fatalf("first up: %+v", res)
	}
	pod := gatewayPod(t, e)
	if pod.Spec.NodeName != n.Name {
		t.Fatalf("gateway pod on %q, want the real node %q", pod.Spec.NodeName, n.Name)
	}
	st := pod.Status.ContainerStatuses[0]
	if !st.Ready || !strings.HasPrefix(st.ContainerID, "containerd://") || st.RestartCount != 0 {
		t.Fatalf("gateway container: ready=%v id=%q restarts=%d", st.Ready, st.ContainerID, st.RestartCount)
	}
	sc := pod.Spec.Containers[0].SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("gateway container's root filesystem is not read-only: %+v", sc)
	}
	if u := pod.Spec.SecurityContext.RunAsUser; u == nil || *u != image.UID {
		t.Errorf("gateway pod runs as %v, want %d", u, image.UID)
	}

	// A chat completion to the pod, as a client on the host would send it.
	sec := get(t, e.kube.CoreV1().Secrets(e.ns).Get, "llmctl-gateway")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	client := openai.NewClient(option.WithBaseURL("http://"+net.JoinHostPort(pod.Status.PodIP, "8080")+"/v1/"),
		option.WithAPIKey(string(sec.Data["admin-key"])), option.WithMaxRetries(0))
	comp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:               engine.DemoName,
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("In the beginning")},
		MaxCompletionTokens: openai.Int(8),
	})
	if err != nil {
		t.Fatalf("chat completion to the gateway pod: %v", err)
	}
	if len(comp.Choices) == 0 || comp.Usage.CompletionTokens == 0 {
		t.Fatalf("empty answer: %+v", comp)
	}
	// Billed: the ledger's debit for it, to the micro-unit, reaches the
	// external PostgreSQL.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	want := -(comp.Usage.PromptTokens*1 + comp.Usage.CompletionTokens*3 + 7)
	for {
		var entries, amount, prompt, completion int64
		err := conn.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(amount), 0), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0)
			FROM ledger_entries WHERE kind = 'debit' AND model = $1`, engine.DemoName).Scan(&entries, &amount, &prompt, &completion)
		if err == nil && entries == 1 && amount == want && prompt == comp.Usage.PromptTokens && completion == comp.Usage.CompletionTokens {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("ledger debits for the completion: %d entries, amount %d (want 1, %d), tokens %d+%d (want %d+%d), err %v",
				entries, amount, want, prompt, completion, comp.Usage.PromptTokens, comp.Usage.CompletionTokens, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Same values: nothing rolls.
	gw := get(t, e.kube.AppsV1().StatefulSets(e.ns).Get, "llmctl-gateway")
	if res, err = e.up(t, time.Minute, io.Discard, set...); err != nil || res.Action != "upgraded" {
		t.Fatalf("second up: %+v %v", res, err)
	}
	if gw2 := get(t, e.kube.AppsV1().StatefulSets(e.ns).Get, "llmctl-gateway"); gw2.Generation != gw.Generation {
		t.Errorf("no-op up changed the gateway StatefulSet: generation %d -> %d", gw.Generation, gw2.Generation)
	}
	if p := gatewayPod(t, e); p.UID != pod.UID {
		t.Error("no-op up replaced the gateway pod")
	}

	// A values change replaces the pod, and the new one passes its probes.
	if _, err := e.up(t, 3*time.Minute, io.Discard, append(set, "gateway.logLevel=debug")...); err != nil {
		t.Fatalf("values change: %v", err)
	}
	p := gatewayPod(t, e)
	if p.UID == pod.UID || !contains(p.Spec.Containers[0].Args, "--log-level=debug") {
		t.Fatalf("values change not rolled out: pod %s args %v", p.UID, p.Spec.Containers[0].Args)
	}
	if !p.Status.ContainerStatuses[0].Ready {
		t.Fatalf("rolled-out gateway pod not Ready: %+v", p.Status)
	}

	// An image the node does not have: up's timeout says why, from the
	// kubelet's real status, in the diagnoser's words.
	_, err = e.up(t, 30*time.Second, io.Discard, append(set, "image.tag=not-imported")...)
	if !errors.Is(err, deploy.ErrRolloutTimeout) || !strings.Contains(err.Error(), "cannot pull image ghcr.io/llmctl/llmctl:not-imported") ||
		!strings.Contains(err.Error(), "must be imported into the node's containerd") {
		t.Fatalf("up with an image the node lacks: %v", err)
	}

	if _, err := e.d.Down(ctx, deploy.DownOptions{Release: "llmctl", Namespace: e.ns, Timeout: 2 * time.Minute}); err != nil {
		t.Fatalf("down: %v", err)
	}
	for {
		_, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, p.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("gateway pod still there after down: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// gatewayPod is the release's one gateway pod.
func gatewayPod(t *testing.T, e *env) *corev1.Pod {
	t.Helper()
	pods, err := e.kube.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/instance=llmctl,app.kubernetes.io/component=gateway"})
	if err != nil {
		t.Fatal(err)
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	if len(live) != 1 {
		t.Fatalf("want one gateway pod, got %d", len(live))
	}
	return &live[0]
}
