// Package egress guards the requests aigw sends to addresses its tenants
// choose (webhooks, async callbacks): only public addresses, unless the
// operator allows networks, checked when the URL is accepted and again when
// the connection is dialled (DNS can change between the two).
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// AllowedNetsEnv names the operator's exceptions to the guard: comma- or
// space-separated CIDRs or IP addresses that webhooks may reach although they
// are not public (e.g. "127.0.0.0/8" for a receiver on the same machine, or
// "10.1.2.0/24" for an internal service).
const AllowedNetsEnv = "AIGW_WEBHOOK_ALLOWED_NETS"

// ErrForbiddenAddress is matched when a webhook URL names, or resolves to, an
// address webhooks may not reach.
var ErrForbiddenAddress = errors.New("not allowed for webhooks")

// nonPublic are the ranges, besides those netip.Addr classifies (loopback,
// private, link-local, multicast, unspecified), that are no public unicast
// address: "this network", carrier-grade NAT, IETF protocol assignments,
// benchmarking, reserved and broadcast, NAT64 (which reaches IPv4 ones) and
// documentation ranges.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// Guard keeps webhooks (requests whose URL a tenant chose) off loopback,
// private, link-local and other non-public addresses, except the networks the
// operator allows. The zero value, or nil, allows public addresses only.
type Guard struct {
	allowed []netip.Prefix
}

// NewGuard returns a Guard that also allows the given networks.
func NewGuard(allowed []netip.Prefix) *Guard {
	return &Guard{allowed: allowed}
}

// ParseAllowedNets parses the value of AllowedNetsEnv: CIDRs or IP addresses
// separated by commas or spaces ("" is none).
func ParseAllowedNets(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is neither a CIDR (such as 10.0.0.0/8) nor an IP address", AllowedNetsEnv, f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// Check returns nil when a webhook may reach ip, else an error matching
// ErrForbiddenAddress that says what kind of address it is.
func (g *Guard) Check(ip netip.Addr) error {
	ip = ip.Unmap()
	if g != nil {
		for _, p := range g.allowed {
			if p.Contains(ip) {
				return nil
			}
		}
	}
	kind := ""
	switch {
	case ip.IsLoopback():
		kind = "a loopback"
	case ip.IsPrivate():
		kind = "a private"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		kind = "a link-local"
	case ip.IsUnspecified():
		kind = "an unspecified"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		kind = "a multicast"
	case !ip.IsValid() || ip.Zone() != "":
		kind = "a scoped"
	default:
		for _, p := range nonPublic {
			if p.Contains(ip) {
				kind = "a reserved"
				break
			}
		}
	}
	if kind == "" {
		return nil
	}
	return fmt.Errorf("%s is %s address, %w: they may reach public addresses only (an operator can allow networks with %s)",
		ip, kind, ErrForbiddenAddress, AllowedNetsEnv)
}

// CheckURL checks the host of a webhook URL when it is submitted: an IP
// address is checked as is; a name is resolved and every address checked. A
// name that does not resolve now is let through (DNS can change, and every
// delivery checks again when it dials).
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.Check(ip)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, ip := range ips {
		if err := g.Check(ip); err != nil {
			return fmt.Errorf("host %s: %w", host, err)
		}
	}
	return nil
}

// DialContext dials addr ("host:port") only if every address the host
// resolves to may be reached, and then dials a checked address itself, so a
// name that resolves differently a moment later (DNS rebinding) cannot slip
// through. It is the dialer of the guard's Client.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
		return nil, err
	}
	for _, ip := range ips {
		if err := g.Check(ip); err != nil {
			return nil, fmt.Errorf("dial %s: %w", host, err)
		}
	}
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	var errs []error
	for _, ip := range ips {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("dial %s: no addresses", host)
	}
	return nil, errors.Join(errs...)
}

// Client returns an http.Client for webhooks: it dials through the guard, uses
// no proxy from the environment (a proxy would reach what the guard refuses),
// and does not follow redirects.
func (g *Guard) Client() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = g.DialContext
	t.DialTLSContext = nil
	return &http.Client{Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
