package preflight

import (
	"fmt"

	"github.com/BurntSushi/toml"
)

// containerdConfig is what doctor needs from a containerd config.toml.
type containerdConfig struct {
	Version int
	// CRIKey is the table that holds the CRI runtimes: `io.containerd.grpc.v1.cri`
	// in version 2, `io.containerd.cri.v1.runtime` in version 3, `cri` in 1.
	CRIKey   string
	Runtimes map[string]runtimeConfig
	// CDI reports whether the CRI plugin injects CDI devices: opt-in
	// (`enable_cdi`) before containerd 2.0, on by default in version 3.
	CDI     bool
	CDIDirs []string
}

// runtimeConfig is one `containerd.runtimes.<name>` entry.
type runtimeConfig struct {
	Type       string
	BinaryName string
	// SystemdCgroup is nil when unset (containerd's default: false).
	SystemdCgroup *bool
}

func (r runtimeConfig) systemd() bool { return r.SystemdCgroup != nil && *r.SystemdCgroup }

// parseContainerdConfig decodes a containerd config in the version 1, 2 or 3
// layout. It rejects TOML errors (the line is in the error) and unknown
// versions; a missing runtimes table is not an error, just no runtimes.
func parseContainerdConfig(data []byte) (containerdConfig, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return containerdConfig{}, fmt.Errorf("parse containerd config: %w", err)
	}
	c := containerdConfig{Version: 1, Runtimes: map[string]runtimeConfig{}}
	if v, ok := raw["version"]; ok {
		n, ok := v.(int64)
		if !ok {
			return c, fmt.Errorf("containerd config: version is %T, want an integer", v)
		}
		c.Version = int(n)
	}
	switch c.Version {
	case 1:
		c.CRIKey = "cri"
	case 2:
		c.CRIKey = "io.containerd.grpc.v1.cri"
	case 3:
		c.CRIKey = "io.containerd.cri.v1.runtime"
		c.CDI = true // containerd 2.x enables CDI unless told not to
	default:
		return c, fmt.Errorf("containerd config: unknown version %d (want 1, 2 or 3)", c.Version)
	}
	cri := table(table(raw, "plugins"), c.CRIKey)
	if b, ok := cri["enable_cdi"].(bool); ok {
		c.CDI = b
	}
	c.CDIDirs = []string{"/etc/cdi", "/var/run/cdi"}
	if dirs, ok := cri["cdi_spec_dirs"].([]any); ok {
		c.CDIDirs = c.CDIDirs[:0]
		for _, d := range dirs {
			if s, ok := d.(string); ok {
				c.CDIDirs = append(c.CDIDirs, s)
			}
		}
	}
	for name, v := range table(table(cri, "containerd"), "runtimes") {
		rt, ok := v.(map[string]any)
		if !ok {
			continue
		}
		r := runtimeConfig{}
		r.Type, _ = rt["runtime_type"].(string)
		opts := table(rt, "options")
		r.BinaryName, _ = opts["BinaryName"].(string)
		if b, ok := opts["SystemdCgroup"].(bool); ok {
			r.SystemdCgroup = &b
		}
		c.Runtimes[name] = r
	}
	return c, nil
}

// table returns m[key] as a table, or nil.
func table(m map[string]any, key string) map[string]any {
	if m == nil {
		return nil
	}
	t, _ := m[key].(map[string]any)
	return t
}
