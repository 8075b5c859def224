package preflight

import (
	"bufio"
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

func hostChecks() []Check {
	return []Check{
		{ID: "host.kernel", Category: CatHost, Title: "Kernel version", Run: checkKernel},
		{ID: "host.wsl", Category: CatHost, Title: "WSL1 vs WSL2 and GPU paravirtualisation", Run: checkWSL},
		{ID: "host.wsl-systemd", Category: CatHost, Title: "WSL2 boots systemd as PID 1", Run: checkWSLSystemd},
		{ID: "host.cgroup", Category: CatHost, Title: "cgroup v2 with cpu, cpuset, memory", Run: checkCgroup},
		{ID: "host.swap", Category: CatHost, Title: "Swap", Run: checkSwap},
		{ID: "host.memory", Category: CatHost, Title: "Available memory", Run: checkMemory},
		{ID: "host.disk", Category: CatHost, Title: "Free disk for images and models", Run: checkDisk},
	}
}

// wsl classifies this host's kernel (facts.DetectWSL).
func (e *Env) wsl() facts.WSL {
	rel, err := e.read(facts.OSRelease)
	if err != nil {
		return facts.NotWSL
	}
	return facts.DetectWSL(rel)
}

var kernelRe = regexp.MustCompile(`^(\d+)\.(\d+)`)

func checkKernel(_ context.Context, e *Env) Outcome {
	rel, err := e.read(facts.OSRelease)
	if err != nil {
		return skip("cannot read the kernel release", readErr(facts.OSRelease, err))
	}
	rel = strings.TrimSpace(rel)
	ev := "/proc/sys/kernel/osrelease: " + rel
	m := kernelRe.FindStringSubmatch(rel)
	if m == nil {
		return warn("unrecognised kernel release "+rel, "", ev)
	}
	ver := m[1] + "." + m[2]
	switch {
	case compareVersions(ver, "4.15") < 0:
		return fail("kernel "+rel+" is too old for K3s with cgroup v2",
			"upgrade to a 5.x or newer kernel (cgroup v2's cpu controller needs 4.15+, and the NVIDIA driver needs a supported kernel)", ev)
	case compareVersions(ver, "5.4") < 0:
		return warn("kernel "+rel+" is old", "a 5.4+ kernel is recommended for cgroup v2 and current NVIDIA drivers", ev)
	}
	return pass("Linux "+rel, ev)
}

func checkWSL(_ context.Context, e *Env) Outcome {
	rel, _ := e.read(facts.OSRelease)
	ev := []string{"/proc/sys/kernel/osrelease: " + strings.TrimSpace(rel)}
	switch e.wsl() {
	case facts.NotWSL:
		return pass("not WSL (bare metal or VM)", ev...)
	case facts.WSL1:
		return fail("this is WSL1: no GPU, no cgroups, no containers",
			"convert the distro to WSL2 from Windows: `wsl --set-version <distro> 2`", ev...)
	}
	dxg := e.exists("/dev/dxg")
	lib := e.exists("/usr/lib/wsl/lib/libdxcore.so")
	ev = append(ev, evf("/dev/dxg: %s", presence(dxg)), evf("/usr/lib/wsl/lib/libdxcore.so: %s", presence(lib)))
	if !dxg {
		return fail("WSL2 without /dev/dxg: the GPU is not passed through",
			"update Windows and WSL (`wsl --update` in PowerShell), install the current NVIDIA Windows driver, then `wsl --shutdown`", ev...)
	}
	if !lib {
		return warn("WSL2 GPU device present but /usr/lib/wsl/lib/libdxcore.so is missing",
			"`wsl --update` and `wsl --shutdown`; /usr/lib/wsl/lib is mounted by WSL from the Windows driver", ev...)
	}
	return pass("WSL2 with GPU paravirtualisation (/dev/dxg)", ev...)
}

func presence(b bool) string {
	if b {
		return "present"
	}
	return "missing"
}

// pid1 is the name of the init process.
func (e *Env) pid1() string {
	c, err := e.read("/proc/1/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(c)
}

// iniValue reads key in [section] of a small INI file (wsl.conf).
func iniValue(content, section, key string) (string, bool) {
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(content))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			cur = strings.ToLower(strings.TrimSpace(l[1 : len(l)-1]))
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if ok && cur == section && strings.EqualFold(strings.TrimSpace(k), key) {
			if i := strings.IndexAny(v, "#;"); i >= 0 {
				v = v[:i]
			}
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

func checkWSLSystemd(_ context.Context, e *Env) Outcome {
	if e.wsl() != facts.WSL2 {
		return skip("not WSL2")
	}
	init := e.pid1()
	ev := []string{"/proc/1/comm: " + init}
	conf, err := e.read("/etc/wsl.conf")
	enabled := false
	if err != nil {
		ev = append(ev, readErr("/etc/wsl.conf", err))
	} else if v, ok := iniValue(conf, "boot", "systemd"); ok {
		ev = append(ev, "/etc/wsl.conf [boot] systemd="+v)
		enabled = strings.EqualFold(v, "true")
	} else {
		ev = append(ev, "/etc/wsl.conf: no [boot] systemd key")
	}
	if init == "systemd" {
		return pass("systemd is PID 1", ev...)
	}
	if enabled {
		return fail("wsl.conf enables systemd but PID 1 is "+init+": WSL was not restarted",
			"run `wsl --shutdown` in PowerShell and reopen the distro (needs WSL 0.67.6+: `wsl --update`)", ev...)
	}
	return fail("systemd is not PID 1 ("+init+"): K3s cannot run as a service",
		"add to /etc/wsl.conf:\n[boot]\nsystemd=true\nthen run `wsl --shutdown` in PowerShell and reopen the distro", ev...)
}

// cgroupMode is how cgroups are mounted.
type cgroupMode string

const (
	cgroupV2     cgroupMode = "v2"
	cgroupHybrid cgroupMode = "hybrid"
	cgroupV1     cgroupMode = "v1"
	cgroupNone   cgroupMode = "none"
)

// cgroup reads the mount mode and the v2 controllers.
func (e *Env) cgroup() (cgroupMode, []string) {
	if c, err := e.read("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return cgroupV2, strings.Fields(c)
	}
	if c, err := e.read("/sys/fs/cgroup/unified/cgroup.controllers"); err == nil {
		return cgroupHybrid, strings.Fields(c)
	}
	if e.exists("/sys/fs/cgroup/memory") || e.exists("/sys/fs/cgroup/cpu") {
		return cgroupV1, nil
	}
	return cgroupNone, nil
}

func checkCgroup(_ context.Context, e *Env) Outcome {
	mode, ctrls := e.cgroup()
	ev := []string{evf("cgroup mode: %s", mode)}
	if mode == cgroupV2 || mode == cgroupHybrid {
		ev = append(ev, "cgroup v2 controllers: "+listOr(ctrls, "none"))
	}
	switch mode {
	case cgroupNone:
		return fail("no cgroup filesystem under /sys/fs/cgroup", "mount cgroup2 at /sys/fs/cgroup (systemd does this at boot)", ev...)
	case cgroupV1:
		return warn("cgroup v1 only: works, but SystemdCgroup and memory accounting want v2",
			"boot with `systemd.unified_cgroup_hierarchy=1` (kernel command line)", ev...)
	case cgroupHybrid:
		rem := "boot with `systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all`"
		if e.wsl() == facts.WSL2 {
			rem = "in %UserProfile%\\.wslconfig add:\n[wsl2]\nkernelCommandLine = cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1\nthen `wsl --shutdown`"
		}
		return warn("cgroup hybrid (v1 + v2): the kubelet and containerd see v1", rem, ev...)
	}
	var missing []string
	for _, c := range []string{"cpu", "cpuset", "memory"} {
		if !slices.Contains(ctrls, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fail("cgroup v2 lacks controllers: "+strings.Join(missing, ", "),
			"enable them: on systemd hosts set `Delegate=yes`, and check the kernel command line for `cgroup_disable=`", ev...)
	}
	return pass("cgroup v2 with cpu, cpuset and memory", ev...)
}

func checkSwap(_ context.Context, e *Env) Outcome {
	s, err := e.read("/proc/swaps")
	if err != nil {
		return skip("cannot read /proc/swaps", readErr("/proc/swaps", err))
	}
	var devs []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n")[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			devs = append(devs, f[0])
		}
	}
	if len(devs) == 0 {
		return pass("swap is off", "/proc/swaps: no entries")
	}
	return warn("swap is on: the kubelet refuses to start with swap unless configured, and swapped model weights crawl",
		"`sudo swapoff -a` and remove swap from /etc/fstab, or run K3s with `--kubelet-arg=fail-swap-on=false`; on WSL2 set `swap=0` under [wsl2] in .wslconfig",
		"/proc/swaps: "+strings.Join(devs, ", "))
}

// meminfo returns a /proc/meminfo field in bytes.
func (e *Env) meminfo(field string) (uint64, error) {
	s, err := e.read("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || k != field {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/meminfo %s: %w", field, err)
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("/proc/meminfo has no %s", field)
}

const gib = 1 << 30

func checkMemory(_ context.Context, e *Env) Outcome {
	total, err := e.meminfo("MemTotal")
	if err != nil {
		return skip("cannot read memory size", err.Error())
	}
	avail, err := e.meminfo("MemAvailable")
	if err != nil {
		return skip("cannot read available memory", err.Error())
	}
	ev := evf("/proc/meminfo: MemTotal %s, MemAvailable %s", bytesString(total), bytesString(avail))
	rem := "K3s with the gateway needs about 2 GiB besides the model; free memory or (WSL2) raise `memory=` under [wsl2] in .wslconfig"
	switch {
	case avail < 1*gib:
		return fail(fmt.Sprintf("only %s of memory available", bytesString(avail)), rem, ev)
	case avail < 2*gib:
		return warn(fmt.Sprintf("only %s of memory available", bytesString(avail)), rem, ev)
	}
	return pass(fmt.Sprintf("%s available of %s", bytesString(avail), bytesString(total)), ev)
}

// diskPath is where K3s keeps images and volumes: what model pulls fill.
const diskPath = "/var/lib/rancher"

func checkDisk(_ context.Context, e *Env) Outcome {
	// Before K3s's first start the directory does not exist yet: measure the
	// filesystem it will be created on, and say which one that is.
	where := diskPath
	for where != "/" && !e.exists(where) {
		where = path.Dir(where)
	}
	free, total, err := e.Statfs(e.path(where))
	if err != nil {
		return skip("cannot stat the filesystem of "+where, err.Error())
	}
	ev := []string{evf("%s (filesystem of %s): %s free of %s", diskPath, where, bytesString(free), bytesString(total))}
	need := uint64(10 * gib)
	if e.Model != "" {
		if m, err := readGGUFFile(e.Model); err == nil {
			size := max(uint64(m.FileSize), m.WeightBytes)
			need += size
			ev = append(ev, evf("model %s: %s (pulled into the cluster once more)", path.Base(e.Model), bytesString(size)))
		}
	}
	rem := "free space under /var/lib/rancher (`sudo k3s crictl rmi --prune` removes unused images)"
	switch {
	case free < 2*gib:
		return fail(fmt.Sprintf("only %s free under %s", bytesString(free), diskPath), rem, ev...)
	case free < need:
		return warn(fmt.Sprintf("%s free under %s, want %s", bytesString(free), diskPath, bytesString(need)), rem, ev...)
	}
	return pass(fmt.Sprintf("%s free under %s", bytesString(free), diskPath), ev...)
}
