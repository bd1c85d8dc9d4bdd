package backend

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// MaxAllowedHosts bounds the allowed_hosts list of a mount.
const MaxAllowedHosts = 256

// ErrHostNotAllowed is what a guarded HTTP client returns, wrapped in a
// *HostNotAllowedError, for a request to a host outside the allowed list.
var ErrHostNotAllowed = errors.New("host not allowed")

// HostNotAllowedError names the refused host.
type HostNotAllowedError struct{ Host string }

func (e *HostNotAllowedError) Error() string {
	return fmt.Sprintf("refused to contact host %q: it is not in the mount's allowed_hosts", Sanitize(e.Host, 120))
}

// Is makes errors.Is(err, ErrHostNotAllowed) hold.
func (e *HostNotAllowedError) Is(target error) bool { return target == ErrHostNotAllowed }

// NormalizeHostPatterns checks an allowed_hosts list and returns it in
// canonical form: lower case, no trailing dot, IP addresses as net.IP prints
// them (IPv6 without brackets). An entry is a host name, an IP address, or
// "*.suffix", which matches any name ending in ".suffix" (at any depth) but
// not "suffix" itself. Schemes, ports, paths and other wildcards are refused:
// the list names hosts, nothing else.
func NormalizeHostPatterns(in []string) ([]string, error) {
	if len(in) > MaxAllowedHosts {
		return nil, fmt.Errorf("more than %d entries", MaxAllowedHosts)
	}
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	for _, raw := range in {
		p, err := normalizeHostPattern(raw)
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

func normalizeHostPattern(raw string) (string, error) {
	p := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(raw)), ".")
	bad := fmt.Errorf("%q is not a host name, an IP address or a *.suffix pattern (no scheme, port, path or other wildcard)", Sanitize(raw, 80))
	if suffix, ok := strings.CutPrefix(p, "*."); ok {
		if !validHostName(suffix) {
			return "", bad
		}
		return "*." + suffix, nil
	}
	if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(p, "["), "]")); ip != nil {
		return ip.String(), nil
	}
	if !validHostName(p) {
		return "", bad
	}
	return p, nil
}

// validHostName is RFC 1123 letters, digits and hyphens (and the underscore
// some internal names carry), in labels of 1 to 63 characters.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// canonicalHost puts a URL's host in the form NormalizeHostPatterns gives.
func canonicalHost(host string) string {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); ip != nil {
		return ip.String()
	}
	return h
}

// HostAllowed reports whether host matches one of the (normalized) patterns.
// An empty list allows every host.
func HostAllowed(host string, patterns []string) bool {
	if len(patterns) == 0 {
		return true
	}
	h := canonicalHost(host)
	if h == "" {
		return false
	}
	for _, p := range patterns {
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(h, "."+suffix) {
				return true
			}
		} else if h == p {
			return true
		}
	}
	return false
}

// URLHost returns the host of an absolute URL ("" when it has none).
func URLHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// GuardTransport returns rt refusing every request whose host the patterns
// func does not allow. patterns is asked on each request, so a change of the
// mount's settings applies to connections already configured; an error from
// it refuses the request (fail closed).
func GuardTransport(rt http.RoundTripper, patterns func() ([]string, error)) http.RoundTripper {
	return &guardedTransport{rt: rt, patterns: patterns}
}

type guardedTransport struct {
	rt       http.RoundTripper
	patterns func() ([]string, error)
}

func (g *guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	allowed, err := g.patterns()
	if err == nil && !HostAllowed(req.URL.Hostname(), allowed) {
		err = &HostNotAllowedError{Host: req.URL.Hostname()}
	}
	if err != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip must close the body, even on error
		}
		return nil, err
	}
	return g.rt.RoundTrip(req)
}

// CloseIdleConnections passes through, so that http.Client's reaches rt.
func (g *guardedTransport) CloseIdleConnections() {
	if c, ok := g.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
