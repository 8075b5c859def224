package kubetest

import (
	"strings"
	"testing"
)

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a`:              `/tmp/a`,
		`/tmp/with\040space`:  `/tmp/with space`,
		`/tmp/tab\011x\134y`:  "/tmp/tab\tx\\y",
		`/tmp/short\04`:       `/tmp/short\04`,
		`/tmp/notoctal\999z`:  `/tmp/notoctal\999z`,
		`/tmp/trailing\`:      `/tmp/trailing\`,
		`\040\040`:            "  ",
		`/var/lib/kubelet\05`: `/var/lib/kubelet\05`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzUnescapeMount: never panics, never grows the path, and leaves a path
// without a backslash as it is.
func FuzzUnescapeMount(f *testing.F) {
	for _, s := range []string{`/a\040b`, `\`, `\0`, `\777`, `/x\1341`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := unescapeMount(s)
		if len(got) > len(s) {
			t.Fatalf("unescapeMount(%q) = %q grew", s, got)
		}
		if !strings.Contains(s, `\`) && got != s {
			t.Fatalf("unescapeMount(%q) = %q changed a path without escapes", s, got)
		}
	})
}
