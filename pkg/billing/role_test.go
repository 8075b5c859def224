package billing

import (
	"strings"
	"testing"
)

func TestParseRole(t *testing.T) {
	for in, want := range map[string]Role{"": RoleUser, "user": RoleUser, "admin": RoleAdmin} {
		if got, err := ParseRole(in); err != nil || got != want {
			t.Errorf("ParseRole(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"root", "ADMIN", "admin "} {
		if _, err := ParseRole(in); err == nil || !strings.Contains(err.Error(), "user or admin") {
			t.Errorf("ParseRole(%q): want an error listing user or admin, got %v", in, err)
		}
	}
	// The zero Principal has no admin right: a caller that forgets to set
	// the role fails closed.
	if (Principal{}).IsAdmin() || !(Principal{Role: RoleAdmin}).IsAdmin() || (Principal{Role: RoleUser}).IsAdmin() {
		t.Error("IsAdmin: want true for the admin role only")
	}
}
