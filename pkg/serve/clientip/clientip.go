// Package clientip finds the address of the client behind a request. It
// believes X-Forwarded-For only as far as the hops that added to it are
// configured trusted proxies: anyone can send that header, so taking its
// first entry (as the original prototype did) lets any caller pick the IP
// that an IP-based limit or log line sees.
package clientip

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver resolves client addresses for one set of trusted proxies. The
// zero value trusts nobody and always answers the TCP peer.
type Resolver struct {
	trusted []netip.Prefix
}

// New parses trusted proxy CIDRs ("10.0.0.0/8") or single addresses
// ("192.0.2.7"); the error names the first entry it cannot read.
func New(trusted []string) (*Resolver, error) {
	r := &Resolver{}
	for _, s := range trusted {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			r.trusted = append(r.trusted, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not a CIDR or IP address", s)
		}
		a = a.Unmap()
		r.trusted = append(r.trusted, netip.PrefixFrom(a, a.BitLen()))
	}
	return r, nil
}

func (r *Resolver) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the client's address for req. It starts from the TCP
// peer and, only while the current hop is a trusted proxy, steps one entry
// left through X-Forwarded-For (the rightmost entry was added by the
// nearest proxy). The first untrusted hop is the client; a malformed entry
// stops the walk at the last hop that could be believed.
func (r *Resolver) ClientIP(req *http.Request) netip.Addr {
	peer, err := netip.ParseAddrPort(req.RemoteAddr)
	var addr netip.Addr
	if err == nil {
		addr = peer.Addr().Unmap()
	} else if a, err := netip.ParseAddr(req.RemoteAddr); err == nil {
		addr = a.Unmap()
	} else {
		return netip.Addr{}
	}
	if len(r.trusted) == 0 || !r.isTrusted(addr) {
		return addr
	}
	return r.walk(addr, req.Header.Values("X-Forwarded-For"))
}

// walk steps right to left through the X-Forwarded-For hops (several header
// lines count as one comma-separated list, in order).
func (r *Resolver) walk(addr netip.Addr, headers []string) netip.Addr {
	for i := len(headers) - 1; i >= 0; i-- {
		hops := strings.Split(headers[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			hop, ok := parseHop(hops[j])
			if !ok {
				return addr
			}
			addr = hop
			if !r.isTrusted(addr) {
				return addr
			}
		}
	}
	return addr
}

// parseHop reads one X-Forwarded-For entry: an IP, optionally with a port
// or in brackets, as proxies write them.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
