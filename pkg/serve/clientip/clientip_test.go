package clientip

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestClientIP(t *testing.T) {
	r, err := New([]string{"10.0.0.0/8", "192.0.2.7", " fd00::/8 "})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		peer string
		xff  []string
		want string
	}{
		{"no proxy, header ignored", "203.0.113.9:5555", []string{"1.2.3.4"}, "203.0.113.9"},
		{"untrusted peer cannot spoof", "198.51.100.1:1", []string{"10.1.1.1, 1.2.3.4"}, "198.51.100.1"},
		{"one trusted proxy", "10.0.0.5:80", []string{"203.0.113.9"}, "203.0.113.9"},
		{"spoofed left entries ignored", "10.0.0.5:80", []string{"6.6.6.6, 203.0.113.9"}, "203.0.113.9"},
		{"chain of trusted proxies", "10.0.0.5:80", []string{"203.0.113.9, 192.0.2.7, 10.9.9.9"}, "203.0.113.9"},
		{"several header lines in order", "10.0.0.5:80", []string{"6.6.6.6, 203.0.113.9", "10.2.2.2"}, "203.0.113.9"},
		{"all hops trusted: leftmost", "10.0.0.5:80", []string{"10.3.3.3, 10.4.4.4"}, "10.3.3.3"},
		{"no header from trusted proxy", "10.0.0.5:80", nil, "10.0.0.5"},
		{"garbage stops at last believable hop", "10.0.0.5:80", []string{"1.1.1.1, bogus, 10.6.6.6"}, "10.6.6.6"},
		{"ports and brackets", "[fd00::1]:443", []string{"[2001:db8::5]:4711"}, "2001:db8::5"},
		{"ipv4 with port", "10.0.0.5:80", []string{"203.0.113.9:1234"}, "203.0.113.9"},
		{"mapped v4 peer", "[::ffff:10.0.0.5]:80", []string{"203.0.113.9"}, "203.0.113.9"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = c.peer
			for _, v := range c.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if got := r.ClientIP(req); got.String() != c.want {
				t.Fatalf("ClientIP = %s, want %s", got, c.want)
			}
		})
	}
}

func TestZeroResolverTrustsNobody(t *testing.T) {
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "10.0.0.5:80"
	req.Header.Set("X-Forwarded-For", "1.2.3.4")
	if got := (&Resolver{}).ClientIP(req); got.String() != "10.0.0.5" {
		t.Fatalf("got %s", got)
	}
}

func TestNewRejectsBadEntries(t *testing.T) {
	_, err := New([]string{"10.0.0.0/8", "10.0.0.0/33"})
	if err == nil || !strings.Contains(err.Error(), `"10.0.0.0/33"`) {
		t.Fatalf("want an error naming the bad entry, got %v", err)
	}
}

// FuzzClientIP: any header must yield either the peer or an address that
// appears in the header, never something else, and never panic.
func FuzzClientIP(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "10.0.0.1, 2.2.2.2", "[::1]:80, x", ",,,", "fd00::1%eth0", " 10.1.1.1 ,1.1.1.1:9"} {
		f.Add(s)
	}
	r, err := New([]string{"10.0.0.0/8", "fd00::/8"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, xff string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = "10.0.0.5:80"
		req.Header.Set("X-Forwarded-For", xff)
		got := r.ClientIP(req)
		if !got.IsValid() {
			t.Fatalf("invalid address for %q", xff)
		}
		if got == netip.MustParseAddr("10.0.0.5") {
			return
		}
		for _, hop := range strings.Split(xff, ",") {
			if a, ok := parseHop(hop); ok && a == got {
				return
			}
		}
		t.Fatalf("ClientIP %s is neither the peer nor a hop of %q", got, xff)
	})
}
