//go:build linux

package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"

	"github.com/llmctl/llmctl/internal/kubetest"
	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/top"
	"github.com/llmctl/llmctl/pkg/top/metrics"
	"github.com/llmctl/llmctl/pkg/top/toptest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// podHost makes this test's own "pod" host: a network namespace joined to
// this one by a veth pair, the pod at 10.231.N.2 and the API server reaching
// it from 10.231.N.1. The API server refuses to proxy to loopback (as it
// should), and a test must not send traffic to any other host, so the pod
// lives in a namespace the test creates and removes. It returns the pod's IP
// and a listener bound inside the namespace.
func podHost(t *testing.T) (string, net.Listener) {
	t.Helper()
	pid := os.Getpid()
	ns := fmt.Sprintf("llmctl-top-%d", pid)
	hostIf, podIf := fmt.Sprintf("lt%dh", pid%100000), fmt.Sprintf("lt%dp", pid%100000)
	n := pid%250 + 1
	hostIP, podIP := fmt.Sprintf("10.231.%d.1", n), fmt.Sprintf("10.231.%d.2", n)
	ipCmd := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	t.Cleanup(func() {
		_ = ipCmd("netns", "del", ns) // takes the veth pair with it
		_ = ipCmd("link", "del", hostIf)
	})
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"link", "add", hostIf, "type", "veth", "peer", "name", podIf},
		{"link", "set", podIf, "netns", ns},
		{"addr", "add", hostIP + "/30", "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", ns, "addr", "add", podIP + "/30", "dev", podIf},
		{"-n", ns, "link", "set", podIf, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			testenv.Unavailable(t, "test network namespace (needs root and iproute2): %v", err)
		}
	}
	// A socket belongs to the namespace of the thread that creates it: bind
	// on a locked thread switched into the namespace. The thread is never
	// unlocked, so the runtime retires it instead of reusing it.
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(podIP, "0"))
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen in namespace %s: %v", ns, r.err)
	}
	return podIP, r.ln
}

// gatewayPod creates a pod that KWOK leaves alone and marks it Running at
// ip with the metrics port; the API server's proxy then reaches ip:port.
func gatewayPod(t *testing.T, cs kubernetes.Interface, ns, name, ip string, port int, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels,
			Annotations: map[string]string{kubetest.DisregardAnnotation: kubetest.DisregardValue}},
		Spec: corev1.PodSpec{NodeName: kubetest.NodeName, Containers: []corev1.Container{{
			Name: "gateway", Image: "example.invalid/llmctl:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: int32(port)}},
		}}},
	}
	var created *corev1.Pod
	apiRetry(t, func() (err error) {
		created, err = cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) { // an earlier try landed; its answer was lost
			created, err = cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		}
		return err
	})
	created.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
	apiRetry(t, func() error {
		_, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{})
		return err
	})
}

// apiRetry retries a call whose connection to the test API server broke
// (seen once under a full parallel `make test` on 2 cores: "unexpected EOF");
// any other error fails the test at once.
func apiRetry(t *testing.T, call func() error) {
	t.Helper()
	var err error
	for try := 0; try < 5; try++ {
		if err = call(); err == nil {
			return
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) && !utilnet.IsConnectionReset(err) &&
			!strings.Contains(err.Error(), "EOF") {
			break
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	t.Fatal(err)
}

func TestDiscoveryThroughPodProxy(t *testing.T) {
	c := kubetest.Start(t)
	cs := c.Client(t)
	ctx := context.Background()
	ns := "llmctl-top"
	apiRetry(t, func() error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})

	// The gateway's /metrics double on the test's own pod host.
	ip, ln := podHost(t)
	gw := toptest.NewGateway()
	mux := http.NewServeMux()
	mux.Handle("/metrics", gw.Handler())
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	chart := map[string]string{"app.kubernetes.io/name": "llmctl-gateway", "app.kubernetes.io/component": "gateway"}
	gatewayPod(t, cs, ns, "gw-0", ip, port, chart)
	// Not a gateway, and a gateway with no IP yet: both left out.
	gatewayPod(t, cs, ns, "redis-0", ip, port, map[string]string{"app.kubernetes.io/name": "redis"})
	pending := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gw-1", Namespace: ns, Labels: chart,
		Annotations: map[string]string{kubetest.DisregardAnnotation: kubetest.DisregardValue}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "gateway", Image: "x", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9090}}}}}}
	apiRetry(t, func() error {
		_, err := cs.CoreV1().Pods(ns).Create(ctx, pending, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})

	clk := &toptest.Clock{T: time.Unix(1_800_000_000, 0), Step: time.Second}
	d := &Discovery{Client: cs, Namespace: ns, Now: clk.Now}
	targets, err := d.Targets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := "kube://" + ns + "/gw-0:" + strconv.Itoa(port)
	if len(targets) != 1 || targets[0] != want {
		t.Fatalf("targets = %v, want [%s]", targets, want)
	}

	// Through top's Sources and Monitor, as `top --namespace` wires them.
	src := &top.Sources{Discover: d.Targets, Scraper: d}
	m := top.NewMonitor(nil, false)
	m.Dynamic = true
	m.ApplyScrapes(src.ScrapeAll(ctx))
	gw.Serve("llama", "200", "gpu-box", 6, 0.3, 0.1, 10, 5)
	m.ApplyScrapes(src.ScrapeAll(ctx))
	ts := m.Targets()
	if len(ts) != 1 || !ts[0].Up || !m.Warm {
		t.Fatalf("targets %+v warm %v", ts, m.Warm)
	}
	if got := m.Traffic.Overall.RPS; got != 6 { // 6 requests over the clock's 1 s
		t.Errorf("rps through the pod proxy = %v, want 6", got)
	}

	// The pod goes away: the target leaves with it; a broken API server
	// shows as the discovery pseudo-target.
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "gw-0", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(m.Targets()) != 0 && time.Now().Before(deadline) {
		m.ApplyScrapes(src.ScrapeAll(ctx))
		time.Sleep(200 * time.Millisecond)
	}
	if len(m.Targets()) != 0 {
		t.Fatalf("deleted pod still a target: %+v", m.Targets())
	}
	bad := &Discovery{Client: cs, Namespace: ns, Selector: "not a selector!!"}
	m.ApplyScrapes((&top.Sources{Discover: bad.Targets, Scraper: bad}).ScrapeAll(ctx))
	if ts := m.Targets(); len(ts) != 1 || ts[0].URL != top.DiscoveryTarget || ts[0].Up || !strings.Contains(ts[0].Error, "selector") {
		t.Fatalf("bad selector: %+v", ts)
	}

	if _, err := d.Scrape(ctx, "kube://nonsense"); err == nil {
		t.Error("malformed target: want an error")
	}
	var _ top.Fetcher = d
	var _ top.Fetcher = &metrics.Scraper{}
}
