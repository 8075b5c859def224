package image_test

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/deploy/image"
)

var static struct {
	once sync.Once
	path string
	err  error
}

// staticBinary builds the real llmctl the way `make image` does.
func staticBinary(t *testing.T) string {
	t.Helper()
	static.once.Do(func() {
		dir, err := os.MkdirTemp("", "llmctl-image-")
		if err != nil {
			static.err = err
			return
		}
		static.path = filepath.Join(dir, "llmctl")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", static.path, "github.com/llmctl/llmctl/cmd/llmctl")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			static.err = errors.New(string(out))
		}
	})
	if static.err != nil {
		t.Fatalf("go build: %v", static.err)
	}
	return static.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if static.path != "" {
		os.RemoveAll(filepath.Dir(static.path))
	}
	os.Exit(code)
}

// The archive loads back as an image tagged ref, runs as the chart's
// non-root user, and its binary is the one given and runs.
func TestBuildRoundTrip(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("builds a linux image from a linux binary")
	}
	bin := staticBinary(t)
	img, err := image.Build(image.Options{Binary: bin, Version: "9.9.9"})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "img.tar")
	const ref = "ghcr.io/llmctl/llmctl:9.9.9"
	if err := image.WriteTarball(out, ref, img); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(ref)
	back, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("archive does not load as %s: %v", ref, err)
	}
	cf, err := back.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || cf.Config.User != "65532:65532" ||
		strings.Join(cf.Config.Entrypoint, " ") != image.BinaryPath || strings.Join(cf.Config.Cmd, " ") != "serve" ||
		cf.Config.Labels["org.opencontainers.image.version"] != "9.9.9" {
		b, _ := json.MarshalIndent(cf, "", "  ")
		t.Fatalf("image config:\n%s", b)
	}
	d1, _ := img.Digest()
	d2, _ := back.Digest()
	if d1 != d2 {
		t.Errorf("digest changed through the archive: %s vs %s", d1, d2)
	}
	// Same inputs, same digest: nothing time- or order-dependent leaks in.
	again, err := image.Build(image.Options{Binary: bin, Version: "9.9.9"})
	if err != nil {
		t.Fatal(err)
	}
	if d3, _ := again.Digest(); d3 != d1 {
		t.Errorf("two builds of the same inputs differ: %s vs %s", d1, d3)
	}

	layers, err := back.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	extracted := filepath.Join(t.TempDir(), "llmctl")
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h
		switch h.Name {
		case "etc/passwd":
			b, _ := io.ReadAll(tr)
			if !strings.Contains(string(b), "nonroot:x:65532:65532:") {
				t.Errorf("passwd has no nonroot user: %q", b)
			}
		case "usr/local/bin/llmctl":
			f, err := os.OpenFile(extracted, os.O_CREATE|os.O_WRONLY, 0o755)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	for _, want := range []string{"etc/ssl/certs/ca-certificates.crt", "tmp/", "home/nonroot/", "usr/local/bin/llmctl"} {
		if files[want] == nil {
			t.Errorf("image lacks %s", want)
		}
	}
	if h := files["tmp/"]; h != nil && h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp mode %o", h.Mode)
	}
	if h := files["home/nonroot/"]; h != nil && h.Uid != image.UID {
		t.Errorf("home owned by %d", h.Uid)
	}
	// The binary inside runs on its own: it is the static build, whole.
	v, err := exec.Command(extracted, "version", "-o", "json").CombinedOutput()
	if err != nil || !strings.Contains(string(v), `"goVersion"`) {
		t.Fatalf("llmctl from the image: %v\n%s", err, v)
	}
}

func TestBuildRejects(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("#!/bin/sh\necho hi\n"), 0o755)
	dynamic, err := exec.LookPath("ls") // any dynamically linked system binary
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		o    image.Options
		want string
	}{
		{"missing", image.Options{Binary: filepath.Join(dir, "nope")}, "no such file"},
		{"not ELF", image.Options{Binary: junk}, "bad magic"},
		{"dynamic", image.Options{Binary: dynamic}, "dynamically linked"},
		{"wrong arch", image.Options{Binary: dynamic, Arch: map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]}, "not "},
		{"unknown arch", image.Options{Binary: dynamic, Arch: "mips"}, "want amd64 or arm64"},
		{"no certs", image.Options{Binary: staticBinary(t), CACerts: filepath.Join(dir, "none.pem")}, "CA certificates"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := image.Build(c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Build(%+v) = %v; want an error containing %q", c.o, err, c.want)
			}
		})
	}
	if err := image.WriteTarball(filepath.Join(dir, "x.tar"), "Not A Ref!!", nil); err == nil || !strings.Contains(err.Error(), "image reference") {
		t.Errorf("bad reference: %v", err)
	}
}

// The image's filesystem alone is enough to serve: unpacked and entered with
// chroot as the image's user (what a container runtime does, minus the
// namespaces), `llmctl serve` on its embedded defaults creates its database
// under the user's home and answers /readyz.
func TestRootFSServes(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "chroot needs root")
	}
	img, err := image.Build(image.Options{Binary: staticBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	os.Chmod(root, 0o755) // t.TempDir is 0700: the image user must traverse it
	untar(t, rc, root)
	rc.Close()

	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cf.Config.Entrypoint[0], "serve", fmt.Sprintf("--listen=127.0.0.1:%d", port), fmt.Sprintf("--admin-listen=127.0.0.1:%d", admin))
	cmd.Dir = cf.Config.WorkingDir
	cmd.Env = cf.Config.Env
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: image.UID, Gid: image.UID}}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start in chroot: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz of llmctl serve inside the image's filesystem: %v\n%s", err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(root, "home/nonroot/.local/share/llmctl")); err != nil {
		t.Errorf("serve kept its database elsewhere: %v\n%s", err, logs.String())
	}
}

// untar unpacks an image layer with its owners and modes.
func untar(t *testing.T, r io.Reader, root string) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err == nil {
				_, err = io.Copy(f, tr)
				f.Close()
			}
		default:
			t.Fatalf("unexpected entry %s (%c)", h.Name, h.Typeflag)
		}
		if err == nil {
			err = os.Chmod(p, os.FileMode(h.Mode&0o777)|modeBits(h.Mode))
		}
		if err == nil {
			err = os.Lchown(p, h.Uid, h.Gid)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func modeBits(m int64) os.FileMode {
	if m&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}
