package backend

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CheckEndpointURL accepts an absolute https URL, or http when the host is
// loopback or allowHTTP is set: credentials sent in clear over a network are
// credentials lost. No user info, no fragment.
func CheckEndpointURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", Sanitize(withoutUserInfo(raw), 120))
	}
	// Before any error that quotes raw: user info may hold a password.
	if u.User != nil {
		return fmt.Errorf("the URL must not carry user info; use client_id and client_secret")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP && !IsLoopback(u.Hostname()) {
			return fmt.Errorf("http:// is allowed only for loopback hosts; use https (or allow_insecure_http=true)")
		}
	default:
		return fmt.Errorf("%q is not an http(s) URL", Sanitize(raw, 120))
	}
	if u.Fragment != "" {
		return fmt.Errorf("the URL must not have a fragment")
	}
	return nil
}

// withoutUserInfo cuts what may be user:password@ from a URL that did not
// parse, so that it can be quoted.
func withoutUserInfo(raw string) string {
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		return "[redacted]" + raw[i:]
	}
	return raw
}

// IsLoopback reports localhost and loopback addresses.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
