# llmctl — build, test, bench, lint.
# `make test` is what CI runs (.ci/run): it installs the Debian packages the
# integration tests need and makes a missing service a failure, not a skip.

GO        ?= go
BIN       ?= bin/llmctl
PKGS      ?= ./...
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE      ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w \
  -X github.com/llmctl/llmctl/internal/version.version=$(VERSION) \
  -X github.com/llmctl/llmctl/internal/version.commit=$(COMMIT) \
  -X github.com/llmctl/llmctl/internal/version.date=$(DATE)
TEST_TIMEOUT ?= 75m

# Debian packages the tests need: the services they start as throwaway
# instances (internal/testenv), tmux and iproute2 for the top tests, a C
# toolchain (llama.cpp reference, -race), containerd, runc and the CNI plugins
# for the test cluster's real node (internal/kubetest). APT_CMDS are installed only when the
# command is missing (npm packs llama.cpp; a node/npm from elsewhere is fine).
APT_PKGS := postgresql redis-server tmux iproute2 ca-certificates gcc libc6-dev containerd runc containernetworking-plugins
APT_CMDS := npm:npm

.PHONY: all build test test-unit bench lint deps fmt clean llamaref kube-tools kube-node release-check image demo-model

all: build

# The real NVML probe needs cgo, the nvml tag and lazy binding (go-nvml's C
# symbols resolve only when the driver library is loaded; see docs/doctor.md).
# NVML=0 builds a pure-Go binary whose doctor reports "no NVML in this build".
NVML ?= 1
ifeq ($(NVML),1)
BUILD_ENV   := CGO_ENABLED=1
BUILD_FLAGS := -tags nvml
LDFLAGS     += -extldflags=-Wl,-z,lazy
else
BUILD_ENV   := CGO_ENABLED=0
endif

build:
	$(BUILD_ENV) $(GO) build -trimpath $(BUILD_FLAGS) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/llmctl

## image: the gateway's container image as a `docker save` archive, built
## with no container runtime or base image (pkg/deploy/image), tagged as the
## chart deploys it. On a K3s node: sudo k3s ctr images import dist/llmctl-image-amd64.tar
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
image: deps
	CGO_ENABLED=0 GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/image/llmctl-linux-$(IMAGE_ARCH) ./cmd/llmctl
	$(GO) run ./tools/image -binary dist/image/llmctl-linux-$(IMAGE_ARCH) -arch $(IMAGE_ARCH) -version $(VERSION) -o dist/llmctl-image-$(IMAGE_ARCH).tar

## deps: install the Debian packages the tests need, only those missing.
deps:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	for c in $(APT_CMDS); do \
	  command -v $${c%%:*} >/dev/null 2>&1 || missing="$$missing $${c#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Packages whose goroutines share state (limiter flusher, ledger writers and
# spool, gateway, batch worker, engine scheduler, top's model, the test control
# plane):
# make test runs them a second time under the race detector. Not
# pkg/billing/limits/accuracy: its subject is three `llmctl serve` processes
# built without -race, so racing its HTTP driver checks nothing and only
# loads the machine its exactness test runs on.
RACE_PKGS ?= ./pkg/billing/ ./pkg/billing/alerts/ ./pkg/billing/ledger/... ./pkg/billing/limits/ ./pkg/billing/store/... ./pkg/billing/webhook/ ./pkg/serve/ ./pkg/serve/protocol/... ./pkg/serve/batch/ ./pkg/serve/engine/ ./pkg/top/ ./pkg/top/ui/ ./pkg/top/metrics/ ./pkg/top/ledgersource/ ./internal/kubetest/

## test: every test, real services required; then the race detector.
test: deps lint llamaref kube-tools kube-node
	LLMCTL_TEST_REQUIRE_SERVICES=1 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)
	LLMCTL_TEST_REQUIRE_SERVICES=1 $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(RACE_PKGS)

## test-grammar: the embedded engine's constrained output at 200 seeds
## (json_object and six schemas, forced tool calls streamed and not): every
## answer parses and validates. 4.5 minutes on a busy 2-core box, so not in test.
test-grammar:
	LLMCTL_GRAMMAR_SEEDS=200 $(GO) test -count=1 -timeout 30m -run '^(TestResponseFormatAlwaysValid|TestToolChoiceRequired)$$' ./pkg/serve/engine/

## test-unit: quick run; integration tests skip when a service is missing.
test-unit:
	$(GO) test -count=1 $(PKGS)

## bench: benchmarks that print ratios against a same-run baseline.
bench: deps llamaref
	LLMCTL_TEST_REQUIRE_SERVICES=1 $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 60m $(PKGS)

## llamaref: the llama.cpp reference the engine tests compare against (npm packages, cached).
llamaref:
	@tools/llamaref/setup.sh >/dev/null

## demo-model: retrain the bundled demo model on the King James Bible (Debian
## bible-kjv; ~10 minutes on one core) and rewrite pkg/serve/engine/demo/kjv.gguf.
demo-model:
	@command -v bible >/dev/null || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq bible-kjv bible-kjv-text; }
	@mkdir -p build
	bible -f Genesis1:1-Revelation22:21 > build/kjv.txt
	$(GO) run ./tools/traindemo -corpus build/kjv.txt -out pkg/serve/engine/demo/kjv.gguf \
	  -heldout pkg/serve/engine/demo/testdata/heldout.txt

## kube-tools: build the test control plane (etcd, kube-apiserver, ...) once into the cache.
kube-tools:
	@hack/kube-tools.sh >/dev/null

## kube-node: build the test cluster's real node (kubelet, pause) once into the cache.
kube-node:
	@hack/kube-node.sh >/dev/null

## release-check: validate goreleaser.yaml and build both release targets (snapshot).
# goreleaser v2.12.7 is the newest that builds with Go 1.26.
GORELEASER ?= $(shell go env GOPATH)/bin/goreleaser
release-check:
	@[ -x $(GORELEASER) ] || $(GO) install github.com/goreleaser/goreleaser/v2@v2.12.7
	$(GORELEASER) check -f goreleaser.yaml
	$(GORELEASER) build --snapshot --clean -f goreleaser.yaml

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
