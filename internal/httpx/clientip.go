package httpx

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TrustedProxies are the peers whose forwarding headers are believed.
type TrustedProxies []netip.Prefix

// ParseTrustedProxies parses addresses and CIDR prefixes ("10.0.0.0/8",
// "192.0.2.7", "2001:db8::/32").
func ParseTrustedProxies(list []string) (TrustedProxies, error) {
	var out TrustedProxies
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("httpx: trusted proxy %q is neither an address nor a CIDR prefix", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (t TrustedProxies) contains(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

type clientIPKey struct{}

// RealIP resolves the client address of each request once, for ClientIP.
// Forwarding headers count only when the peer is a trusted proxy: then the
// chain of addresses (RFC 7239 Forwarded "for=", else X-Forwarded-For) is
// read from the right, past every trusted proxy, and the first address
// that is not one is the client. A hop that cannot be read (an obfuscated
// identifier, "unknown", garbage) stops the walk at the last address
// known, which is then taken for the client: nothing left of it can be
// trusted. With no trusted proxies it is the peer, always.
func RealIP(trusted TrustedProxies) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ip := peerIP(r)
			if len(trusted) > 0 && ip.IsValid() && trusted.contains(ip) {
				ip = trusted.client(ip, forwardedChain(r.Header))
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientIPKey{}, ip)))
		})
	}
}

// client walks chain (client first, nearest proxy last) from the right,
// starting at the trusted peer.
func (t TrustedProxies) client(peer netip.Addr, chain []string) netip.Addr {
	ip := peer
	for i := len(chain) - 1; i >= 0; i-- {
		if !t.contains(ip) {
			return ip
		}
		hop, ok := parseHop(chain[i])
		if !ok {
			return ip
		}
		ip = hop
	}
	return ip
}

// forwardedChain returns the hops the forwarding headers name, client
// first: Forwarded's "for=" parameters if there is a Forwarded header,
// else X-Forwarded-For's entries (every header line, in order).
func forwardedChain(h http.Header) []string {
	if fwd := h.Values("Forwarded"); len(fwd) > 0 {
		var hops []string
		for _, line := range fwd {
			for _, elem := range strings.Split(line, ",") {
				hops = append(hops, forParam(elem))
			}
		}
		return hops
	}
	var hops []string
	for _, line := range h.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(line, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	return hops
}

// forParam returns the value of the "for" parameter of one Forwarded
// element, unquoted ("" if it has none).
func forParam(elem string) string {
	for _, pair := range strings.Split(elem, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.EqualFold(k, "for") {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// parseHop reads one hop: an address, possibly with a port, IPv6 possibly
// in brackets ("192.0.2.1", "192.0.2.1:4711", "[2001:db8::1]:4711",
// "2001:db8::1").
func parseHop(s string) (netip.Addr, bool) {
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

// peerIP is the address of the TCP peer.
func peerIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}

// ClientIP returns the client's address: as RealIP resolved it, or the
// peer's when RealIP did not run. Forwarding headers are never read here.
func ClientIP(r *http.Request) netip.Addr {
	if ip, ok := r.Context().Value(clientIPKey{}).(netip.Addr); ok {
		return ip
	}
	return peerIP(r)
}
