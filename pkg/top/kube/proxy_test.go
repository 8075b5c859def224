package kube

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/llmctl/llmctl/pkg/top/toptest"
)

// TestRequestsReachTheAPIServer checks, against a stand-in for the API
// server that answers only the two paths top uses, that discovery lists
// with the selector and scrapes through pods/NAME:PORT/proxy/metrics. The
// real API server is exercised by TestDiscoveryThroughPodProxy when the
// control-plane binaries are built.
func TestRequestsReachTheAPIServer(t *testing.T) {
	gw := toptest.NewGateway()
	gw.Serve("m", "200", "b", 3, 0.1, 0, 1, 1)
	var gotSelector string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/namespaces/ns/pods", func(w http.ResponseWriter, r *http.Request) {
		gotSelector = r.URL.Query().Get("labelSelector")
		running := func(name, ip string, ports ...corev1.ContainerPort) corev1.Pod {
			return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
				Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "gateway", Ports: ports}}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip}}
		}
		list := corev1.PodList{Items: []corev1.Pod{
			running("gw-b", "10.0.0.2", corev1.ContainerPort{Name: "metrics", ContainerPort: 9090}),
			running("gw-a", "10.0.0.1", corev1.ContainerPort{Name: "metrics", ContainerPort: 9091}),
			running("no-ip", "", corev1.ContainerPort{Name: "metrics", ContainerPort: 9090}),
			running("no-port", "10.0.0.3", corev1.ContainerPort{Name: "http", ContainerPort: 8080}),
		}}
		list.Kind, list.APIVersion = "PodList", "v1"
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(list)
	})
	mux.Handle("GET /api/v1/namespaces/ns/pods/gw-a:9091/proxy/metrics", gw.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	cs, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	d := &Discovery{Client: cs, Namespace: "ns", Now: func() time.Time { return time.Unix(5, 0) }}
	ctx := context.Background()
	ts, err := d.Targets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if gotSelector != DefaultSelector {
		t.Errorf("selector %q, want %q", gotSelector, DefaultSelector)
	}
	if len(ts) != 2 || ts[0] != "kube://ns/gw-a:9091" || ts[1] != "kube://ns/gw-b:9090" {
		t.Fatalf("targets = %v", ts)
	}
	sc, err := d.Scrape(ctx, ts[0])
	if err != nil {
		t.Fatal(err)
	}
	if sc.Families["llmctl_requests_total"] == nil || !sc.At.Equal(time.Unix(5, 0)) {
		t.Fatalf("scrape through the proxy path: %v families at %v", len(sc.Families), sc.At)
	}
	if _, err := d.Scrape(ctx, ts[1]); err == nil {
		t.Error("a proxy path the API server does not answer: want an error")
	}
	byNumber := &Discovery{Client: cs, Namespace: "ns", Port: "8080"}
	if ts, _ := byNumber.Targets(ctx); len(ts) != 3 {
		t.Errorf("numeric port: every running pod with an IP, got %v", ts)
	}
}
