package kubetest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/llmctl/llmctl/internal/testenv"
)

// RealNode is a kubelet beside the control plane that really runs pods, with
// containerd, runc and the CNI bridge plugin from this machine's packages.
// It is tainted (RealNodeTaint), so only pods that tolerate it and select it
// by name land there; the KWOK node keeps everything else.
//
// Its runtime chain and why each setting (probed on a cgroup v1 Firecracker
// VM, kernel 6.18, Debian 12's containerd 1.6.20 and runc 1.1.5):
//   - containerd's CRI restrict_oom_score_adj: the kubelet asks for a
//     negative oom_score_adj (-998 for the sandbox, -997 for Guaranteed
//     pods), which needs CAP_SYS_RESOURCE; in a sandbox without it (CI's)
//     runc's write to /proc/self/oom_score_adj gets EACCES and every pod
//     sandbox fails with "can't get final child's PID from pipe: EOF".
//     Restricted, containerd never asks for less than its own score.
//   - the kubelet's failCgroupV1=false on a cgroup v1 host (v1.37 refuses v1
//     by default), the cgroupfs driver (no systemd as PID 1), and its own
//     cgroup root per node, so two test packages' nodes do not share one.
//   - a bridge per node on its own /24, no masquerading: pods talk to the
//     host (Gateway) and the host to the pods' IPs; nothing leaves the box.
//   - no registry: the sandbox's pause image is built here (PauseImage) and
//     tests import theirs with ImportImage.
type RealNode struct {
	// Name is the node's name (and its kubernetes.io/hostname label).
	Name string
	// Dir holds containerd's and the kubelet's state.
	Dir string
	// Containerd is containerd's socket: the CRI endpoint, and ctr's -a.
	Containerd string
	// ContainerdConfig is containerd's config file.
	ContainerdConfig string
	// Subnet is the pods' network; the host reaches pod IPs directly.
	Subnet *net.IPNet
	// Gateway is the host's address on the pods' bridge: what pods dial to
	// reach a service the test started on the host.
	Gateway net.IP
	// Startup is how long the node took from containerd's start to Ready.
	Startup time.Duration

	ctr     string
	bridge  string
	cgroups []string
	sysctls map[string]string
}

// kubeletSysctls are the host settings the kubelet rewrites at start
// (protectKernelDefaults false: vm.overcommit_memory=1, kernel.panic=10,
// kernel.panic_on_oops=1, ...); the harness puts them back on stop.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// RealNodeTaint keeps pods off the real node unless they tolerate it.
const RealNodeTaint = "kubetest.llmctl.dev/real-node"

// RealNodeName is the real node's name.
const RealNodeName = "kubetest-node"

// PauseImage is the sandbox image the harness builds and imports.
const PauseImage = "llmctl.invalid/kubetest/pause:1"

// NodeToolsEnv overrides the directory holding the kubelet and pause
// binaries hack/kube-node.sh builds.
const NodeToolsEnv = "LLMCTL_KUBE_NODE_TOOLS"

// Schedule puts spec's pod on n: the taint's toleration and a node selector.
func (n *RealNode) Schedule(spec *corev1.PodSpec) {
	spec.NodeSelector = map[string]string{"kubernetes.io/hostname": n.Name}
	spec.Tolerations = append(spec.Tolerations, corev1.Toleration{
		Key: RealNodeTaint, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
	})
}

// ImportImage loads a `docker save` archive into the node's containerd, in
// the namespace the kubelet's pods use.
func (n *RealNode) ImportImage(ctx context.Context, archive string) error {
	out, err := exec.CommandContext(ctx, n.ctr, "-a", n.Containerd, "-n", "k8s.io",
		"images", "import", archive).CombinedOutput()
	if err != nil {
		return fmt.Errorf("import %s into containerd: %w: %s", archive, err, bytes.TrimSpace(out))
	}
	return nil
}

// ExposeHost makes a loopback-only service on this host (testenv's
// PostgreSQL, Redis) reachable from the node's pods: it returns an address
// on Gateway that forwards each connection to addr, until t ends.
func (n *RealNode) ExposeHost(t testing.TB, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(n.Gateway.String(), "0"))
	if err != nil {
		t.Fatalf("kubetest: expose %s to pods: %v", addr, err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go forward(in, addr)
		}
	}()
	return ln.Addr().String()
}

// forward copies between in and a new connection to addr until either closes.
func forward(in net.Conn, addr string) {
	defer in.Close()
	out, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer out.Close()
	copied := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); copied <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); copied <- struct{}{} }()
	<-copied
}

// RealNode returns c's real node, starting it on first use. A missing piece
// (not root, no containerd/runc/CNI plugins, kubelet not built) skips t, or
// fails it under LLMCTL_TEST_REQUIRE_SERVICES=1.
func (c *Cluster) RealNode(t testing.TB) *RealNode {
	t.Helper()
	c.nodeMu.Lock()
	defer c.nodeMu.Unlock()
	if c.node != nil {
		return c.node
	}
	if c.nodeErr == nil {
		tools, err := nodeTools()
		if err != nil {
			testenv.Unavailable(t, "kubetest real node: %v", err)
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c.node, c.nodeErr = c.startNode(ctx, tools)
	}
	if c.nodeErr != nil {
		t.Fatalf("kubetest: start real node: %v", c.nodeErr)
	}
	return c.node
}

// nodeBins are what the real node runs besides the kubelet: containerd's
// packages' binaries and the CNI plugins it configures.
type nodeBins struct {
	kubelet, pause, containerd, ctr, cniDir string
}

func nodeTools() (nodeBins, error) {
	var b nodeBins
	if os.Geteuid() != 0 {
		return b, errors.New("needs root (containerd, cgroups, network namespaces)")
	}
	dir := os.Getenv(NodeToolsEnv)
	if dir == "" {
		tools, err := ToolsDir()
		if err != nil {
			return b, err
		}
		dir = filepath.Join(filepath.Dir(tools), "kube-node-"+Version)
	}
	b.kubelet, b.pause = filepath.Join(dir, "kubelet"), filepath.Join(dir, "pause")
	for _, p := range []string{b.kubelet, b.pause} {
		if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
			return b, fmt.Errorf("%s not built (run `make kube-node`)", p)
		}
	}
	for _, cmd := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc", "ip", "mount"} {
		p, err := lookPath(cmd)
		if err != nil {
			return b, fmt.Errorf("%s not installed (Debian: containerd runc containernetworking-plugins iproute2)", cmd)
		}
		switch cmd {
		case "containerd":
			b.containerd = p
		case "ctr":
			b.ctr = p
		}
	}
	for _, d := range []string{"/usr/lib/cni", "/opt/cni/bin"} {
		if _, err := os.Stat(filepath.Join(d, "bridge")); err == nil {
			b.cniDir = d
			break
		}
	}
	if b.cniDir == "" {
		return b, errors.New("CNI plugins not installed (Debian: containernetworking-plugins)")
	}
	return b, nil
}

// sbinPath is PATH with the sbin directories a non-login root shell may lack:
// Debian installs runc in /usr/sbin, and containerd finds its shim and runc
// (the kubelet: mount, ip) on its PATH.
func sbinPath() string {
	return os.Getenv("PATH") + ":/usr/local/sbin:/usr/sbin:/sbin"
}

func lookPath(cmd string) (string, error) {
	for _, d := range filepath.SplitList(sbinPath()) {
		p := filepath.Join(d, cmd)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// nodeCmd is a command with sbinPath as its PATH.
func nodeCmd(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "PATH="+sbinPath())
	return cmd
}

func (c *Cluster) startNode(ctx context.Context, b nodeBins) (_ *RealNode, err error) {
	began := time.Now()
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	suffix := hex.EncodeToString(id)
	dir := filepath.Join(c.Dir, "node")
	n := &RealNode{
		Name:             RealNodeName,
		Dir:              dir,
		Containerd:       filepath.Join(dir, "containerd.sock"),
		ContainerdConfig: filepath.Join(dir, "containerd.toml"),
		ctr:              b.ctr,
		bridge:           "llkt" + suffix,
	}
	// Cleaned up after the processes stop, even if the start fails halfway.
	c.after = append(c.after, n.cleanup)
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w (logs in %s)", err, filepath.Join(c.Dir, "logs"))
		}
	}()
	for _, d := range []string{"cni/net.d", "kubelet", "pod-logs", "certs", "volume-plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if n.Subnet, n.Gateway, err = freeSubnet(); err != nil {
		return nil, err
	}
	// The bridge exists before the first pod (the CNI plugin adopts it), so
	// a test can listen on Gateway as soon as the node is up.
	ip, err := lookPath("ip")
	if err != nil {
		return nil, err
	}
	ones, _ := n.Subnet.Mask.Size()
	for _, args := range [][]string{
		{"link", "add", "name", n.bridge, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("%s/%d", n.Gateway, ones), "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if out, err := nodeCmd(ip, args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	cgroupRoot := "/llmctl-kubetest-" + suffix
	if n.cgroups, err = makeCgroupRoot(cgroupRoot); err != nil {
		return nil, err
	}

	conflist := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "kubetest", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "%s/%d", "gateway": %q}]],
            "dataDir": %q}},
  {"type": "loopback"}]}
`, n.bridge, n.Subnet.IP, ones, n.Gateway, filepath.Join(dir, "cni/ipam"))
	if err := os.WriteFile(filepath.Join(dir, "cni/net.d/10-kubetest.conflist"), []byte(conflist), 0o644); err != nil {
		return nil, err
	}
	conf := containerdConf(containerdParams{dir: dir, socket: n.Containerd, cniBin: b.cniDir, cniConf: filepath.Join(dir, "cni/net.d")})
	if err := os.WriteFile(n.ContainerdConfig, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := c.runCmd("containerd", nodeCmd(b.containerd, "--config", n.ContainerdConfig)); err != nil {
		return nil, err
	}
	if err := poll(ctx, c, "containerd socket", func() (bool, error) {
		conn, err := net.Dial("unix", n.Containerd)
		if err != nil {
			return false, nil
		}
		conn.Close()
		return true, nil
	}); err != nil {
		return nil, err
	}
	pause := filepath.Join(dir, "pause.tar")
	if err := writePauseImage(b.pause, pause); err != nil {
		return nil, err
	}
	if err := n.ImportImage(ctx, pause); err != nil {
		return nil, err
	}

	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	kubeletConf := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
cgroupRoot: %q
containerRuntimeEndpoint: unix://%s
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzPort: 0
oomScoreAdj: 0
podLogsDir: %q
volumePluginDir: %q
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
registerWithTaints:
- {key: %q, effect: NoSchedule}
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: /etc/resolv.conf
`, cgroupRoot, n.Containerd, port, filepath.Join(dir, "pod-logs"), filepath.Join(dir, "volume-plugins"), RealNodeTaint)
	if err := os.WriteFile(filepath.Join(dir, "kubelet.yaml"), []byte(kubeletConf), 0o644); err != nil {
		return nil, err
	}
	n.sysctls = map[string]string{}
	for _, k := range kubeletSysctls {
		if v, err := os.ReadFile("/proc/sys/" + k); err == nil {
			n.sysctls[k] = string(v)
		}
	}
	if err := c.runCmd("kubelet", nodeCmd(b.kubelet,
		"--config="+filepath.Join(dir, "kubelet.yaml"),
		"--kubeconfig="+c.Kubeconfig,
		"--root-dir="+filepath.Join(dir, "kubelet"),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--hostname-override="+n.Name,
		// The API server reaches the kubelet (logs) where it listens.
		"--node-ip=127.0.0.1",
	)); err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	if err := poll(ctx, c, "node "+n.Name+" Ready", func() (bool, error) {
		node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil // not registered yet
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		return nil, err
	}
	n.Startup = time.Since(began)
	return n, nil
}

// writePauseImage writes a one-layer image holding the pause binary.
func writePauseImage(bin, archive string) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	if err := tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(data)),
		Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar.Bytes())), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	tag, err := name.NewTag(PauseImage)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(archive, tag, img)
}

// freeSubnet picks a /24 in 10.244.0.0/16 that no local interface uses, so
// two test packages' nodes (and the host's own networks) do not collide.
func freeSubnet() (*net.IPNet, net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, nil, err
	}
	b := make([]byte, 1)
	for range 64 {
		if _, err := rand.Read(b); err != nil {
			return nil, nil, err
		}
		_, subnet, _ := net.ParseCIDR(fmt.Sprintf("10.244.%d.0/24", b[0]))
		taken := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && (subnet.Contains(ipn.IP) || ipn.Contains(subnet.IP)) {
				taken = true
			}
		}
		if !taken {
			gw := make(net.IP, 4)
			copy(gw, subnet.IP.To4())
			gw[3] = 1
			return subnet, gw, nil
		}
	}
	return nil, nil, errors.New("no free /24 in 10.244.0.0/16 for the node's pods")
}

// makeCgroupRoot creates the kubelet's cgroup root in every mounted cgroup
// hierarchy (v1 controllers, and the v2 tree), returning the directories.
func makeCgroupRoot(root string) ([]string, error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, m := range mounts {
		d := filepath.Join(m, root)
		if err := os.Mkdir(d, 0o755); err != nil {
			return dirs, fmt.Errorf("cgroup root: %w", err)
		}
		dirs = append(dirs, d)
	}
	return dirs, nil
}

func cgroupMounts() ([]string, error) {
	var out []string
	for _, m := range mountInfo() {
		if m.fstype == "cgroup" || m.fstype == "cgroup2" {
			out = append(out, m.point)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no cgroup filesystem mounted")
	}
	return out, nil
}

type mount struct{ point, fstype string }

// mountInfo lists this mount namespace's mounts (/proc/self/mountinfo).
func mountInfo() []mount {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []mount
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i, s := range f {
			if s == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+1 >= len(f) {
			continue
		}
		out = append(out, mount{point: unescapeMount(f[4]), fstype: f[sep+1]})
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cleanup runs once the kubelet and containerd have stopped: it kills what
// they leave running (the pods' processes, containerd's shims), unmounts
// what they mounted, and removes the cgroups and the bridge.
func (n *RealNode) cleanup() {
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := n.killCgroupProcs() + n.killShims()
		if left == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var points []string
	for _, m := range mountInfo() {
		if m.point == n.Dir || strings.HasPrefix(m.point, n.Dir+"/") {
			points = append(points, m.point)
		}
	}
	// Deepest first: a mount under another goes before it.
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
	for _, root := range n.cgroups {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
	}
	for k, v := range n.sysctls {
		_ = os.WriteFile("/proc/sys/"+k, []byte(v), 0o644)
	}
	if ip, err := lookPath("ip"); err == nil && n.bridge != "" {
		_ = nodeCmd(ip, "link", "delete", n.bridge).Run()
	}
}

// killCgroupProcs SIGKILLs every process in the node's cgroups and returns
// how many it found.
func (n *RealNode) killCgroupProcs() int {
	found := 0
	for _, root := range n.cgroups {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
					found++
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
	return found
}

// killShims SIGKILLs containerd shims serving this node's containerd: they
// outlive containerd by design.
func (n *RealNode) killShims() int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	found := 0
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(data, []byte("containerd-shim")) {
			continue
		}
		if !bytes.Contains(data, []byte("\x00"+n.Containerd+"\x00")) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err == nil {
			found++
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return found
}
