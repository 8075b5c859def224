// Command image writes the gateway's container image as a `docker save`
// archive (see pkg/deploy/image): `make image` runs it on a CGO_ENABLED=0
// build. The tag defaults to what the embedded chart deploys, so importing
// the archive into K3s (`k3s ctr images import`) is all a node needs.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/llmctl/llmctl/pkg/deploy"
	"github.com/llmctl/llmctl/pkg/deploy/image"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("binary", "", "statically linked llmctl binary (required)")
	out := flag.String("o", "", "output archive (required)")
	arch := flag.String("arch", runtime.GOARCH, "the binary's architecture")
	ref := flag.String("tag", "", "image reference (default: the chart's image at its appVersion)")
	version := flag.String("version", "", "OCI version label (default: the chart's appVersion)")
	certs := flag.String("ca-certs", image.DefaultCACerts, "CA bundle to install")
	flag.Parse()
	if *bin == "" || *out == "" || flag.NArg() > 0 {
		flag.Usage()
		return fmt.Errorf("-binary and -o are required")
	}
	ch, err := deploy.LoadChart()
	if err != nil {
		return err
	}
	if *version == "" {
		*version = ch.Metadata.AppVersion
	}
	if *ref == "" {
		repo, _ := ch.Values["image"].(map[string]any)["repository"].(string)
		*ref = repo + ":" + ch.Metadata.AppVersion
	}
	img, err := image.Build(image.Options{Binary: *bin, Arch: *arch, Version: *version, CACerts: *certs})
	if err != nil {
		return err
	}
	if err := image.WriteTarball(*out, *ref, img); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s\n  %s (%s)\n", *out, *ref, d)
	return nil
}
