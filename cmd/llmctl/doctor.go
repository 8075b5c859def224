package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/gpu/nvmlprobe"
	"github.com/llmctl/llmctl/pkg/preflight"
	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

// doctorDeps are the outside world doctor reads; tests replace them.
type doctorDeps struct {
	gpu    preflight.GPUProbe
	kube   *preflight.KubeTarget
	statfs func(string) (uint64, uint64, error)
}

// doctorOptions is `llmctl doctor`'s flags and the state built from them.
type doctorOptions struct {
	g    *globals
	deps doctorDeps

	Root        string
	Kubeconfig  string
	KubeContext string
	Namespace   string
	Model       string
	Context     int
	CPU         bool
	GPUMemUtil  float64
	Only, Skip  []string
	Strict      bool
	Fix         bool
	Yes         bool
	Verbose     bool
	List        bool
	Timeout     time.Duration
	MinDriver   string
	CRISocket   string

	format printer.Format
	checks []preflight.Check
	env    *preflight.Env
}

func newDoctorCmd(g *globals) *cobra.Command { return newDoctorCmdWith(g, doctorDeps{}) }

func newDoctorCmdWith(g *globals, deps doctorDeps) *cobra.Command {
	o := &doctorOptions{g: g, deps: deps}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the host → WSL2 → GPU → K3s containerd → cluster → model chain and say how to fix it",
		Long: `doctor runs independent checks over this host, its NVIDIA GPU (NVML), K3s's
containerd configuration, the cluster and an optional model (GGUF, or a
Hugging Face safetensors directory sized for vLLM), concurrently
and each under a timeout. Every check reports pass, warn, fail or skip, what
it read, and the fix. Exit status: 0 when nothing failed, 1 otherwise (warnings
too with --strict).`,
		Example: `  llmctl doctor
  llmctl doctor --model ./qwen2.5-7b-instruct-q4_k_m.gguf --context 8192
  llmctl doctor --model ~/models/Qwen2.5-7B-Instruct --context 32768   # safetensors, sized for vLLM
  llmctl doctor --only gpu,runtime -o json
  llmctl doctor --root /mnt/image --skip cluster
  sudo llmctl doctor --fix`,
		Args: cobra.NoArgs,
		// Exit status 1 is a verdict, not a usage error.
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Root, "root", "/", "filesystem root to inspect (a mounted image, or a fixture tree)")
	f.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG, then "+facts.K3sKubeconfig+", then ~/.kube/config)")
	f.StringVar(&o.KubeContext, "context-name", "", "kubeconfig context to use")
	f.StringVarP(&o.Namespace, "namespace", "n", preflight.DefaultNamespace, "namespace of the gateway's pods")
	f.StringVar(&o.Model, "model", "", "model to fit into VRAM: a GGUF file (llama.cpp), or a Hugging Face directory with config.json and *.safetensors (vLLM); headers only are read")
	f.Float64Var(&o.GPUMemUtil, "gpu-memory-utilization", preflight.DefaultGPUMemoryUtilization, "with a safetensors --model: vLLM's --gpu-memory-utilization")
	f.IntVar(&o.Context, "context", 0, "context length in tokens for the KV cache (default: the model's, capped at 8192)")
	f.BoolVar(&o.CPU, "cpu", false, "fit the model into RAM for the embedded CPU engine instead of VRAM")
	f.StringSliceVar(&o.Only, "only", nil, "run only these checks or categories (host, gpu, runtime, cluster, model)")
	f.StringSliceVar(&o.Skip, "skip", nil, "skip these checks or categories")
	printer.Bind(cmd, &o.format)
	f.BoolVar(&o.Strict, "strict", false, "exit 1 on warnings too")
	f.BoolVar(&o.Fix, "fix", false, "offer the safe fixes (containerd template, RuntimeClass, WSL2 node label), each shown and confirmed")
	f.BoolVarP(&o.Yes, "yes", "y", false, "with --fix: apply without asking")
	f.BoolVarP(&o.Verbose, "verbose", "v", false, "show the evidence of passing checks too")
	f.BoolVar(&o.List, "list", false, "list the checks and exit")
	f.DurationVar(&o.Timeout, "timeout", preflight.DefaultCallTimeout, "timeout of each external call (NVML, one API request)")
	f.StringVar(&o.MinDriver, "min-driver", preflight.DefaultMinDriver, "oldest acceptable NVIDIA driver version")
	f.StringVar(&o.CRISocket, "cri-socket", "", "containerd's CRI socket to read the live runtime status from (default: "+strings.Join(facts.ContainerdSockets(), ", then ")+", with --root /)")
	withE2E(cmd, g, &o.format) // doctor_e2e.go
	return cmd
}

// Complete resolves flags into an Env: output format, checks, NVML, cluster client.
func (o *doctorOptions) Complete() error {
	var err error
	if o.checks, err = preflight.Select(preflight.All(), splitList(o.Only), splitList(o.Skip)); err != nil {
		return err
	}
	if o.List {
		return nil
	}
	gpu := o.deps.gpu
	switch {
	case gpu != nil:
	case filepath.Clean(o.Root) != "/":
		// The GPUs NVML would report are this machine's, not the tree's.
		gpu = preflight.StaticProbe(preflight.GPUSnapshot{Init: preflight.InitNotQueried,
			InitDetail: "--root " + o.Root + " is a filesystem tree, not this machine"})
	default:
		gpu = nvmlprobe.Open()
	}
	var kube preflight.KubeTarget
	if o.deps.kube != nil {
		kube = *o.deps.kube
	} else {
		kube = preflight.LoadKube(preflight.KubeOptions{
			Root: o.Root, Kubeconfig: o.Kubeconfig, Context: o.KubeContext,
			EnvPath: os.Getenv("KUBECONFIG"), Home: os.Getenv("HOME"), Timeout: o.Timeout,
		})
	}
	o.env = &preflight.Env{
		Root: o.Root, GPU: gpu, Kube: kube, Namespace: o.Namespace,
		Model: o.Model, Context: o.Context, CPU: o.CPU, GPUMemoryUtilization: o.GPUMemUtil,
		MinDriver: o.MinDriver, CallTimeout: o.Timeout, Statfs: o.deps.statfs,
		CRISocket: o.CRISocket,
	}
	return nil
}

// splitList accepts both repeated flags and comma lists, trimmed.
func splitList(xs []string) []string {
	var out []string
	for _, x := range xs {
		for _, p := range strings.Split(x, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// Validate rejects flag combinations that cannot work.
func (o *doctorOptions) Validate() error {
	if o.Context < 0 {
		return fmt.Errorf("--context %d: want a positive number of tokens", o.Context)
	}
	if o.Timeout <= 0 {
		return fmt.Errorf("--timeout %s: want a positive duration", o.Timeout)
	}
	if o.GPUMemUtil <= 0 || o.GPUMemUtil > 1 {
		return fmt.Errorf("--gpu-memory-utilization %g: want a fraction of the GPU's memory, above 0 and at most 1", o.GPUMemUtil)
	}
	if o.Fix && o.format != printer.Table {
		return errors.New("--fix is interactive: use it with table output")
	}
	if o.Yes && !o.Fix {
		return errors.New("--yes only makes sense with --fix")
	}
	if o.Model != "" {
		if _, err := os.Stat(o.Model); err != nil {
			return fmt.Errorf("--model %s: not a readable file or directory", o.Model)
		}
	}
	if fi, err := os.Stat(o.Root); err != nil || !fi.IsDir() {
		return fmt.Errorf("--root %s: not a directory", o.Root)
	}
	return nil
}

// Run runs the checks, prints the report, offers fixes and sets the exit code.
func (o *doctorOptions) Run(ctx context.Context) error {
	if o.List {
		t := printer.TableWriter(o.g.Out, "id", "category", "title")
		for _, c := range o.checks {
			t.Row(c.ID, string(c.Category), c.Title)
		}
		return t.Flush()
	}
	rep := preflight.Run(ctx, o.env, o.checks, preflight.RunOptions{})
	if o.format != printer.Table {
		if err := printer.Structured(o.g.Out, o.format, rep); err != nil {
			return err
		}
	} else if err := rep.WriteTable(o.g.Out, preflight.TableOptions{Color: o.color(), Verbose: o.Verbose}); err != nil {
		return err
	}
	if o.Fix {
		if len(rep.Fixes()) == 0 {
			fmt.Fprintln(o.g.Out, "\nno automatic fixes to offer")
		} else {
			preflight.ApplyFixes(ctx, rep, o.g.Out, o.confirm())
			fmt.Fprintln(o.g.Out, "\nrun `llmctl doctor` again to verify")
		}
	}
	if code := rep.ExitCode(o.Strict); code != 0 {
		return exitError{code: code}
	}
	return nil
}

// color: only on a terminal, and never with --no-color or NO_COLOR.
func (o *doctorOptions) color() bool {
	return o.g.Color() && isTerminal(o.g.Out)
}

// confirm asks on stdin for each fix, or says yes to all with --yes.
func (o *doctorOptions) confirm() preflight.Confirm {
	if o.Yes {
		return func(*preflight.Fix) (bool, error) { return true, nil }
	}
	in := bufio.NewReader(o.g.In)
	return func(f *preflight.Fix) (bool, error) {
		fmt.Fprintf(o.g.Out, "apply %s? [y/N] ", f.ID)
		line, err := in.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("read answer: %w", err)
		}
		ans := strings.ToLower(strings.TrimSpace(line))
		if line == "" && errors.Is(err, io.EOF) {
			fmt.Fprintln(o.g.Out)
		}
		return ans == "y" || ans == "yes", nil
	}
}
