// Package cri reads a container runtime's live state over its CRI socket, as
// `crictl info` does: the RuntimeService's Status call with verbose set
// returns the runtime's conditions (RuntimeReady, NetworkReady) and, from
// containerd, the CRI plugin's effective configuration as JSON. doctor uses
// it to see the runtimes containerd really registered, which may differ from
// any config file it can read (K3s renders its own, a drop-in may override).
package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Condition is one of the runtime's status conditions.
type Condition struct {
	Type    string // RuntimeReady, NetworkReady
	Ready   bool
	Reason  string
	Message string
}

// Runtime is one runtime handler registered in the CRI plugin.
type Runtime struct {
	// Type is the shim ("io.containerd.runc.v2").
	Type string
	// Path is the shim binary, when the config names one (runtime_path).
	Path string
	// BinaryName is the OCI runtime the runc shim execs (options.BinaryName);
	// empty means "runc" on containerd's PATH.
	BinaryName string
}

// Config is what doctor needs of the CRI plugin's effective configuration.
type Config struct {
	DefaultRuntime string
	Runtimes       map[string]Runtime
	CDI            bool
	CDIDirs        []string
}

// RuntimeNames lists the registered runtimes, sorted.
func (c Config) RuntimeNames() []string {
	out := make([]string, 0, len(c.Runtimes))
	for n := range c.Runtimes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Status is the runtime's answer to a verbose Status call.
type Status struct {
	Conditions []Condition
	// Config is the parsed effective config; HasConfig is false when the
	// runtime sent none (CRI-O, or a containerd that omits it).
	Config    Config
	HasConfig bool
}

// Condition returns the condition of type t, and whether it was reported.
func (s Status) Condition(t string) (Condition, bool) {
	for _, c := range s.Conditions {
		if c.Type == t {
			return c, true
		}
	}
	return Condition{}, false
}

// ReadStatus asks the runtime at socket (a unix socket path) for its verbose
// status. ctx bounds the whole call, connecting included.
func ReadStatus(ctx context.Context, socket string) (Status, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return Status{}, fmt.Errorf("CRI socket %s: %w", socket, err)
	}
	defer conn.Close()
	resp, err := runtimeapi.NewRuntimeServiceClient(conn).Status(ctx, &runtimeapi.StatusRequest{Verbose: true},
		grpc.WaitForReady(false))
	if err != nil {
		return Status{}, fmt.Errorf("CRI status from %s: %w", socket, err)
	}
	var st Status
	for _, c := range resp.GetStatus().GetConditions() {
		st.Conditions = append(st.Conditions, Condition{Type: c.GetType(), Ready: c.GetStatus(), Reason: c.GetReason(), Message: c.GetMessage()})
	}
	if raw, ok := resp.GetInfo()["config"]; ok {
		if st.Config, err = ParseConfig([]byte(raw)); err != nil {
			return st, err
		}
		st.HasConfig = true
	}
	return st, nil
}

// criConfig is the part of containerd's CRI plugin config (its JSON form in
// Status's info["config"]) that doctor reads. containerd 1.6 to 2.x keep the
// runtimes under "containerd"; option keys keep their TOML spelling.
type criConfig struct {
	Containerd struct {
		DefaultRuntimeName string                `json:"defaultRuntimeName"`
		Runtimes           map[string]criRuntime `json:"runtimes"`
	} `json:"containerd"`
	EnableCDI   bool     `json:"enableCDI"`
	CDISpecDirs []string `json:"cdiSpecDirs"`
}

type criRuntime struct {
	Type    string         `json:"runtimeType"`
	Path    string         `json:"runtimePath"`
	Options map[string]any `json:"options"`
}

// ErrNoConfig is returned for an info["config"] that is not a JSON object.
var ErrNoConfig = errors.New("the runtime's status carries no CRI config object")

// ParseConfig decodes the CRI plugin's effective config from the JSON in a
// verbose Status's info["config"]. Unknown fields are ignored (they change
// with every containerd release); a wrongly typed known field is an error.
func ParseConfig(data []byte) (Config, error) {
	trimmed := strings.TrimSpace(string(data))
	if !strings.HasPrefix(trimmed, "{") {
		return Config{}, ErrNoConfig
	}
	var raw criConfig
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("parse the CRI config in the runtime's status: %w", err)
	}
	c := Config{
		DefaultRuntime: raw.Containerd.DefaultRuntimeName,
		Runtimes:       make(map[string]Runtime, len(raw.Containerd.Runtimes)),
		CDI:            raw.EnableCDI,
		CDIDirs:        raw.CDISpecDirs,
	}
	for name, r := range raw.Containerd.Runtimes {
		rt := Runtime{Type: r.Type, Path: r.Path}
		rt.BinaryName, _ = r.Options["BinaryName"].(string)
		c.Runtimes[name] = rt
	}
	return c, nil
}
