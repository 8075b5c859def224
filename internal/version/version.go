// Package version reports the build's version, commit and date.
//
// Release builds set the three variables with -ldflags -X; plain `go build`
// and `go install` builds fall back to what the Go toolchain recorded in the
// binary's build info.
package version

import (
	"runtime"
	"runtime/debug"
)

// Set by -ldflags "-X github.com/llmctl/llmctl/internal/version.version=…".
// They are written only by the linker, never at run time.
var (
	version = ""
	commit  = ""
	date    = ""
)

// Info describes one build of llmctl.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the build's Info, preferring linker-set values over build info.
func Get() Info {
	info := Info{
		Version:   version,
		Commit:    commit,
		Date:      date,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.time":
				if info.Date == "" {
					info.Date = s.Value
				}
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	if info.Date == "" {
		info.Date = "unknown"
	}
	return info
}
