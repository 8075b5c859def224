package facts

import "strings"

// OSRelease is the kernel release file WSL is detected from.
const OSRelease = "/proc/sys/kernel/osrelease"

// WSL says whether the kernel is WSL1's, WSL2's or neither.
type WSL int

// WSL kinds.
const (
	NotWSL WSL = iota
	WSL1
	WSL2
)

func (w WSL) String() string {
	switch w {
	case WSL1:
		return "WSL1"
	case WSL2:
		return "WSL2"
	}
	return "not WSL"
}

// DetectWSL classifies a kernel release (the contents of OSRelease): WSL2
// kernels say "microsoft-standard-WSL2" (older ones "-microsoft-standard"),
// WSL1 fakes a kernel whose release says "Microsoft" with a capital M.
func DetectWSL(osrelease string) WSL {
	rel := strings.TrimSpace(osrelease)
	lower := strings.ToLower(rel)
	switch {
	case strings.Contains(lower, "wsl2"), strings.Contains(lower, "microsoft-standard"):
		return WSL2
	case strings.Contains(rel, "Microsoft"):
		return WSL1
	case strings.Contains(lower, "microsoft"):
		return WSL2
	}
	return NotWSL
}
