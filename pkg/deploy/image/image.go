// Package image builds the gateway's container image from a static llmctl
// binary, with no container runtime and no base image: the layer is written
// here (the binary, CA certificates, a passwd entry for the non-root user the
// chart runs as), so the image can be built and imported into K3s's
// containerd on a machine that cannot reach a registry.
package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// UID is the user the image runs as; the chart's pod securityContext uses
// the same number (runAsNonRoot needs a numeric user in the image config).
const UID = 65532

// BinaryPath is where the binary lives inside the image.
const BinaryPath = "/usr/local/bin/llmctl"

// DefaultCACerts is Debian's CA bundle (package ca-certificates), copied in
// so the gateway can call TLS backends and webhooks.
const DefaultCACerts = "/etc/ssl/certs/ca-certificates.crt"

// Options say what to put in the image.
type Options struct {
	// Binary is a statically linked linux llmctl for Arch.
	Binary string
	// Arch is the GOARCH the binary was built for; default runtime.GOARCH.
	Arch string
	// Version goes into the OCI version label.
	Version string
	// CACerts is a PEM bundle to install; empty means DefaultCACerts.
	CACerts string
	// Created stamps the config and every file; zero means the Unix epoch,
	// so the same inputs give the same digest.
	Created time.Time
}

// ErrNotStatic is returned for a binary that needs a dynamic loader: the
// image has no libc.
var ErrNotStatic = errors.New("binary is dynamically linked (build with CGO_ENABLED=0)")

// Build returns the image. The binary is checked first: an ELF executable
// for Arch with no interpreter, so it runs on an empty root filesystem.
func Build(o Options) (v1.Image, error) {
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if o.CACerts == "" {
		o.CACerts = DefaultCACerts
	}
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0).UTC()
	}
	if err := checkBinary(o.Binary, o.Arch); err != nil {
		return nil, err
	}
	certs, err := os.ReadFile(o.CACerts)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	// The opener rebuilds the tar stream on each call (digest, diff ID,
	// write) instead of holding a copy of a ~100 MB binary in memory.
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeRootFS(pw, o, certs)) }()
		return pr, nil
	})
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.Arch
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		Entrypoint:   []string{BinaryPath},
		Cmd:          []string{"serve"},
		User:         fmt.Sprintf("%d:%d", UID, UID),
		WorkingDir:   "/home/nonroot",
		Env:          []string{"PATH=/usr/local/bin", "HOME=/home/nonroot"},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "9090/tcp": {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":   "llmctl",
			"org.opencontainers.image.version": o.Version,
			"org.opencontainers.image.source":  "https://github.com/llmctl/llmctl",
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return img, nil
}

// WriteTarball writes img tagged ref as a `docker save` archive, which both
// `k3s ctr images import` and `docker load` read.
func WriteTarball(path, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

func checkBinary(path, arch string) error {
	want, ok := elfMachine[arch]
	if !ok {
		return fmt.Errorf("architecture %q: want amd64 or arm64", arch)
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("binary %s: %w", path, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("binary %s: not an executable (%s)", path, f.Type)
	}
	if f.Machine != want {
		return fmt.Errorf("binary %s is for %s, not %s", path, f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("binary %s: %w", path, ErrNotStatic)
		}
	}
	return nil
}

// writeRootFS writes the image's only layer.
func writeRootFS(w io.Writer, o Options, certs []byte) error {
	tw := tar.NewWriter(w)
	dir := func(path string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: o.Created, Format: tar.FormatPAX})
	}
	file := func(path string, mode int64, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: mode, Size: size, ModTime: o.Created, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, UID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", UID)
	for _, d := range []struct {
		path string
		mode int64
		uid  int
	}{
		{"etc", 0o755, 0}, {"etc/ssl", 0o755, 0}, {"etc/ssl/certs", 0o755, 0},
		{"home", 0o755, 0}, {"home/nonroot", 0o700, UID},
		{"tmp", 0o1777, 0}, {"data", 0o755, UID},
		{"usr", 0o755, 0}, {"usr/local", 0o755, 0}, {"usr/local/bin", 0o755, 0},
	} {
		if err := dir(d.path, d.mode, d.uid); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		path string
		body []byte
	}{
		{"etc/passwd", []byte(passwd)}, {"etc/group", []byte(group)},
		{"etc/ssl/certs/ca-certificates.crt", certs},
	} {
		if err := file(f.path, 0o644, int64(len(f.body)), bytes.NewReader(f.body)); err != nil {
			return err
		}
	}
	bin, err := os.Open(o.Binary)
	if err != nil {
		return err
	}
	defer bin.Close()
	st, err := bin.Stat()
	if err != nil {
		return err
	}
	if err := file(BinaryPath[1:], 0o755, st.Size(), bin); err != nil {
		return fmt.Errorf("add %s: %w", o.Binary, err)
	}
	return tw.Close()
}
