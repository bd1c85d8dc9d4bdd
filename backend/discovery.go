package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Discovery timings.
const (
	// DiscoveryTTL is how long fetched metadata is used before it is read
	// again.
	DiscoveryTTL = time.Hour
	// DiscoveryRetry is how long stale metadata keeps serving after a failed
	// re-read before the next try.
	DiscoveryRetry = time.Minute
	// DiscoveryMaxStale bounds how old metadata may be and still serve while
	// the server's metadata cannot be read.
	DiscoveryMaxStale = 24 * time.Hour
)

// Metadata is what the engine takes from an authorization server's metadata
// (OpenID Connect Discovery 1.0 section 3, RFC 8414 section 2).
type Metadata struct {
	Issuer                   string   `json:"issuer"`
	TokenEndpoint            string   `json:"token_endpoint"`
	AuthorizationEndpoint    string   `json:"authorization_endpoint"`
	RevocationEndpoint       string   `json:"revocation_endpoint"`
	TokenEndpointAuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	// MTLSEndpointAliases (RFC 8705 5) are used with tls_client_auth.
	MTLSEndpointAliases struct {
		TokenEndpoint      string `json:"token_endpoint"`
		RevocationEndpoint string `json:"revocation_endpoint"`
	} `json:"mtls_endpoint_aliases"`
	// DeviceAuthorizationEndpoint is RFC 8628 4's (grant_device.go).
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
	// JWKSURI is where the issuer's public keys are (OpenID Connect
	// Discovery 3), for verifying its ID tokens.
	JWKSURI string `json:"jwks_uri"`

	Source  string    `json:"-"` // the URL the metadata was read from
	Fetched time.Time `json:"-"`
}

// DiscoveryError is a failure to obtain usable metadata. Its message names
// the issuer and the URL(s) read.
type DiscoveryError struct {
	Issuer    string
	URL       string // the URL(s) tried, comma separated
	Status    int    // HTTP status of the last answer, 0 when none
	Reason    string
	Temporary bool
}

func (e *DiscoveryError) Error() string {
	return fmt.Sprintf("discovery of issuer %q from %s failed: %s", Sanitize(e.Issuer, 200), e.URL, e.Reason)
}

// WellKnownURLs are where an issuer's metadata is read, in order: OpenID
// Connect Discovery (<issuer>/.well-known/openid-configuration) and RFC 8414
// (/.well-known/oauth-authorization-server inserted before the issuer's
// path). The issuer must be an absolute URL without query or fragment.
func WellKnownURLs(issuer string) ([]string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.Opaque != "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", Sanitize(withoutUserInfo(issuer), 120))
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, errors.New("an issuer has no query or fragment (RFC 8414 2)")
	}
	if u.User != nil {
		return nil, errors.New("the URL must not carry user info")
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	base := u.Scheme + "://" + u.Host
	return []string{
		base + path + "/.well-known/openid-configuration",
		base + "/.well-known/oauth-authorization-server" + path,
	}, nil
}

// Discovery reads and caches one issuer's metadata. It is safe for
// concurrent use; the exported fields must be set before first use.
type Discovery struct {
	Issuer            string
	HTTP              *http.Client
	AllowInsecureHTTP bool
	// AllowedHosts, when set, is asked for the mount's allowed_hosts; every
	// endpoint in the metadata must lie on an allowed host.
	AllowedHosts func() ([]string, error)
	TTL          time.Duration    // DiscoveryTTL when 0
	Now          func() time.Time // time.Now when nil

	mu      sync.Mutex
	md      *Metadata
	expires time.Time
	retryAt time.Time
	flight  singleflight.Group
}

func (d *Discovery) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Cached returns the metadata held, if any, without reading.
func (d *Discovery) Cached() *Metadata {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.md
}

// Metadata returns the cached metadata while it is fresh, and reads it
// again otherwise (one read at a time). When a re-read fails, metadata less
// than DiscoveryMaxStale old keeps serving, and the read is tried again
// after DiscoveryRetry: an outage of the metadata document must not stop
// token requests to a token endpoint that still works.
func (d *Discovery) Metadata(ctx context.Context) (*Metadata, error) {
	now := d.now()
	d.mu.Lock()
	md, expires, retryAt := d.md, d.expires, d.retryAt
	d.mu.Unlock()
	if md != nil && (now.Before(expires) || now.Before(retryAt)) {
		return md, nil
	}
	v, err, _ := d.flight.Do("", func() (any, error) {
		return d.Fetch(context.WithoutCancel(ctx))
	})
	if err != nil {
		if md != nil && now.Sub(md.Fetched) < DiscoveryMaxStale {
			d.mu.Lock()
			d.retryAt = now.Add(DiscoveryRetry)
			d.mu.Unlock()
			return md, nil
		}
		return nil, err
	}
	return v.(*Metadata), nil
}

// Fetch reads the metadata now, checks it and caches it.
func (d *Discovery) Fetch(ctx context.Context) (*Metadata, error) {
	urls, err := WellKnownURLs(d.Issuer)
	if err != nil {
		return nil, &DiscoveryError{Issuer: d.Issuer, URL: "(none)", Reason: err.Error()}
	}
	var md *Metadata
	var first *DiscoveryError
	for _, u := range urls {
		md, err = d.fetchOne(ctx, u)
		if err == nil {
			break
		}
		var de *DiscoveryError
		if !errors.As(err, &de) || !de.fallThrough() {
			return nil, err
		}
		if first == nil {
			first = de
		} else {
			de.URL = first.URL + " and " + de.URL
			de.Reason = first.Reason + "; " + de.Reason
			return nil, de
		}
	}
	if err := d.check(md); err != nil {
		return nil, err
	}
	md.Fetched = d.now()
	ttl := d.TTL
	if ttl <= 0 {
		ttl = DiscoveryTTL
	}
	d.mu.Lock()
	d.md, d.expires, d.retryAt = md, md.Fetched.Add(ttl), time.Time{}
	d.mu.Unlock()
	return md, nil
}

// fallThrough: the document is not at this URL (a non-200 answer, or not
// metadata), so the next well-known URL may hold it. A network failure, or
// metadata naming another issuer, ends discovery.
func (e *DiscoveryError) fallThrough() bool {
	return e.Status != 0 && e.Status != http.StatusOK || e.Reason == notMetadata
}

const notMetadata = "the answer is not a JSON metadata document"

func (d *Discovery) fetchOne(ctx context.Context, u string) (*Metadata, error) {
	fail := func(status int, temporary bool, format string, args ...any) error {
		return &DiscoveryError{Issuer: d.Issuer, URL: u, Status: status, Reason: fmt.Sprintf(format, args...), Temporary: temporary}
	}
	body, err := getDocument(ctx, d.HTTP, u)
	var de *documentError
	if errors.As(err, &de) {
		return nil, fail(de.Status, de.Temporary, "%s", de.Reason)
	}
	var md Metadata
	if json.Unmarshal(body, &md) != nil {
		return nil, fail(http.StatusOK, false, notMetadata)
	}
	md.Source = u
	return &md, nil
}

// check applies OpenID Connect Discovery 4.3 / RFC 8414 3.3 (the metadata's
// issuer is the configured one, exactly) and the engine's rules for
// endpoints (CheckEndpointURL, allowed_hosts).
func (d *Discovery) check(md *Metadata) error {
	fail := func(format string, args ...any) error {
		return &DiscoveryError{Issuer: d.Issuer, URL: md.Source, Status: http.StatusOK, Reason: fmt.Sprintf(format, args...)}
	}
	if md.Issuer != d.Issuer {
		return fail("the metadata names issuer %q, not the configured one (OpenID Connect Discovery 4.3, RFC 8414 3.3)", Sanitize(md.Issuer, 200))
	}
	if md.TokenEndpoint == "" {
		return fail("the metadata has no token_endpoint")
	}
	var allowed []string
	if d.AllowedHosts != nil {
		var err error
		if allowed, err = d.AllowedHosts(); err != nil {
			return fail("%v", err)
		}
	}
	for _, ep := range []struct{ name, value string }{
		{"token_endpoint", md.TokenEndpoint}, {"authorization_endpoint", md.AuthorizationEndpoint},
		{"revocation_endpoint", md.RevocationEndpoint},
		// device-code sends the client credential here as to the token endpoint.
		{"device_authorization_endpoint", md.DeviceAuthorizationEndpoint}, {"jwks_uri", md.JWKSURI},
		{"mtls_endpoint_aliases.token_endpoint", md.MTLSEndpointAliases.TokenEndpoint},
		{"mtls_endpoint_aliases.revocation_endpoint", md.MTLSEndpointAliases.RevocationEndpoint},
	} {
		if ep.value == "" {
			continue
		}
		if err := CheckEndpointURL(ep.value, d.AllowInsecureHTTP); err != nil {
			return fail("%s: %v", ep.name, err)
		}
		if h := URLHost(ep.value); !HostAllowed(h, allowed) {
			return fail("%s: host %q is not in the mount's allowed_hosts", ep.name, Sanitize(h, 120))
		}
	}
	if len(md.TokenEndpointAuthMethods) > 64 {
		md.TokenEndpointAuthMethods = md.TokenEndpointAuthMethods[:64]
	}
	return nil
}

// Seed copies another Discovery's cached metadata (of the same issuer),
// so that a config rewritten without moving keeps it.
func (d *Discovery) Seed(from *Discovery) {
	if from == nil || from.Issuer != d.Issuer || from.AllowInsecureHTTP != d.AllowInsecureHTTP {
		return
	}
	from.mu.Lock()
	md, expires := from.md, from.expires
	from.mu.Unlock()
	d.mu.Lock()
	d.md, d.expires = md, expires
	d.mu.Unlock()
}
