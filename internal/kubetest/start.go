package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

// GPUResource is the extended resource the NVIDIA device plugin advertises.
const GPUResource = facts.GPUResource

// kwokNodeAnnotation marks the nodes KWOK manages (and only those).
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

// start brings up etcd, the API server, the controller manager, the scheduler
// and KWOK under root, then registers the fake GPU node.
func start(ctx context.Context, bin, root string) (_ *Cluster, err error) {
	c := &Cluster{Dir: root, Node: NodeName, Context: "kubetest", spawn: newSpawner()}
	defer func() {
		if err != nil {
			c.stop()
			err = fmt.Errorf("%w (logs in %s)", err, filepath.Join(root, "logs"))
		}
	}()
	for _, d := range []string{"logs", "pki", "etcd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort, kwokPort := ports[0], ports[1], ports[2], ports[3]

	// Serving certificate for 127.0.0.1, and the service-account signing key.
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", nil, []string{"localhost"})
	if err != nil {
		return nil, fmt.Errorf("serving cert: %w", err)
	}
	saKey, err := keyutil.MakeEllipticPrivateKeyPEM()
	if err != nil {
		return nil, fmt.Errorf("service-account key: %w", err)
	}
	token, err := randomToken()
	if err != nil {
		return nil, err
	}
	pki := filepath.Join(root, "pki")
	files := map[string][]byte{
		"serving.crt": certPEM,
		"serving.key": keyPEM,
		"sa.key":      saKey,
		// token,user,uid,"groups": the admin is in system:masters, which RBAC's
		// bootstrap policy binds to cluster-admin.
		"tokens.csv": []byte(token + ",kubetest-admin,kubetest-admin,\"system:masters\"\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(pki, name), data, 0o600); err != nil {
			return nil, err
		}
	}

	host := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.Config = &rest.Config{
		Host:            host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: certPEM},
		QPS:             200,
		Burst:           400,
	}
	c.Kubeconfig = filepath.Join(root, "kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.Context, host, token, certPEM); err != nil {
		return nil, err
	}

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	if err := c.run(bin, "etcd",
		"--name=kubetest",
		"--data-dir="+filepath.Join(root, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		"--unsafe-no-fsync", // throwaway data: durability only costs time
		"--log-level=warn",
	); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, c, "etcd", etcdURL+"/health", nil); err != nil {
		return nil, err
	}

	if err := c.run(bin, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		// 127.0.0.1 as the advertised address is only allowed when the API
		// server does not manage the kubernetes Service endpoints itself.
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--tls-cert-file="+filepath.Join(pki, "serving.crt"),
		"--tls-private-key-file="+filepath.Join(pki, "serving.key"),
		"--token-auth-file="+filepath.Join(pki, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+filepath.Join(pki, "sa.key"),
		"--service-account-signing-key-file="+filepath.Join(pki, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
		"--profiling=false",
	); err != nil {
		return nil, err
	}
	tlsConf, err := clientTLS(certPEM)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, c, "kube-apiserver", host+"/readyz", func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+token)
	}, tlsConf); err != nil {
		return nil, err
	}

	if err := c.run(bin, "kube-controller-manager",
		"--kubeconfig="+c.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--service-account-private-key-file="+filepath.Join(pki, "sa.key"),
		"--root-ca-file="+filepath.Join(pki, "serving.crt"),
		"--use-service-account-credentials=false",
		"--controller-start-interval=0",
		// KWOK renews the fake node's lease; on a loaded 2-core box (a
		// kubelet, containerd and go build beside it) a renewal came late
		// enough for the default 50 s grace to mark it NotReady mid-test.
		"--node-monitor-grace-period=3m",
	); err != nil {
		return nil, err
	}
	if err := c.run(bin, "kube-scheduler",
		"--kubeconfig="+c.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
	); err != nil {
		return nil, err
	}
	kwokArgs := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		"--disregard-status-with-annotation-selector=" + DisregardAnnotation + "=" + DisregardValue,
		"--server-address=127.0.0.1:" + strconv.Itoa(kwokPort),
		"--node-ip=127.0.0.1",
	}
	stages, err := filepath.Glob(filepath.Join(bin, "kwok-stages", "*.yaml"))
	if err != nil || len(stages) == 0 {
		return nil, fmt.Errorf("no KWOK stage files in %s", filepath.Join(bin, "kwok-stages"))
	}
	for _, s := range stages {
		kwokArgs = append(kwokArgs, "--config="+s)
	}
	if err := c.run(bin, "kwok", kwokArgs...); err != nil {
		return nil, err
	}

	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	if err := c.AddNode(ctx, NodeName, NodeGPUs, nil); err != nil {
		return nil, err
	}
	// The controller manager creating the default ServiceAccount proves it
	// runs; pods cannot be admitted into a namespace before that.
	if err := poll(ctx, c, "default ServiceAccount", func() (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// AddNode registers a KWOK-managed fake node advertising gpus nvidia.com/gpu
// (none when gpus is 0) and waits until KWOK reports it Ready.
func (c *Cluster) AddNode(ctx context.Context, name string, gpus int64, labels map[string]string) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("128Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	if gpus > 0 {
		res[GPUResource] = *resource.NewQuantity(gpus, resource.DecimalSI)
	}
	l := map[string]string{
		"kubernetes.io/hostname": name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
		"type":                   "kwok",
	}
	for k, v := range labels {
		l[k] = v
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      l,
			Annotations: map[string]string{kwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
		},
		Status: corev1.NodeStatus{
			Capacity:    res,
			Allocatable: res,
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:  Version,
				OperatingSystem: "linux",
				Architecture:    "amd64",
			},
		},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	return poll(ctx, c, "node "+name+" Ready", func() (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

// proc is one control-plane process and its log.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

func (c *Cluster) run(bin, name string, args ...string) error {
	return c.runCmd(name, exec.Command(filepath.Join(bin, name), args...))
}

// runCmd starts cmd as the process name, logging to logs/<name>.log.
func (c *Cluster) runCmd(name string, cmd *exec.Cmd) error {
	log, err := os.Create(filepath.Join(c.Dir, "logs", name+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir = c.Dir
	if err := c.spawn.start(cmd); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	c.procs = append(c.procs, p)
	return nil
}

// exited reports a process that died, with the tail of its log.
func (c *Cluster) exited() error {
	for _, p := range c.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v: %s", p.name, p.err, logTail(p.log.Name(), 1500))
		default:
		}
	}
	return nil
}

// stop ends the processes in reverse start order: SIGTERM, then SIGKILL.
func (c *Cluster) stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.log.Close()
	}
	c.procs = nil
	for i := len(c.after) - 1; i >= 0; i-- {
		c.after[i]()
	}
	c.after = nil
	if c.spawn != nil {
		c.spawn.close()
		c.spawn = nil
	}
}

func waitHTTP(ctx context.Context, c *Cluster, what, url string, auth func(*http.Request), tlsConf ...*tls.Config) error {
	tr := &http.Transport{}
	if len(tlsConf) > 0 {
		tr.TLSClientConfig = tlsConf[0]
	}
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	defer tr.CloseIdleConnections()
	return poll(ctx, c, what+" ready", func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		if auth != nil {
			auth(req)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return false, nil // not listening yet
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// poll calls cond every 100ms until it is true, it errs, a control-plane
// process dies, or ctx ends.
func poll(ctx context.Context, c *Cluster, what string, cond func() (bool, error)) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var lastErr error
	for {
		if err := c.exited(); err != nil {
			return err
		}
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), lastErr)
		case <-t.C:
		}
	}
}

func clientTLS(caPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("serving certificate: no PEM")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func writeKubeconfig(path, name, host, token string, caPEM []byte) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: host, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "default"}
	cfg.CurrentContext = name
	return clientcmd.WriteToFile(*cfg, path)
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func freePorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for len(out) < n {
		p, err := testenv.FreePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
