package backend

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"time"

	cleanhttp "github.com/hashicorp/go-cleanhttp"
)

// DefaultRequestTimeout bounds a token request (every try and wait
// together, and so each exchange) when the config sets no request_timeout.
const DefaultRequestTimeout = 20 * time.Second

// RequestTimeout is the one bound of a token request: configured, or the
// default.
func RequestTimeout(configured time.Duration) time.Duration {
	if configured <= 0 {
		return DefaultRequestTimeout
	}
	return configured
}

// NewHTTPClient returns the client used for one config: pooled connections
// (go-cleanhttp, so no global state is shared with other code in the
// process), TLS 1.2 at least, the config's CA bundle if any, and no
// redirects: a token endpoint that redirects is misconfigured or hostile,
// and following it would resend the client's credentials elsewhere.
func NewHTTPClient(timeout time.Duration, caPEM string) (*http.Client, error) {
	timeout = RequestTimeout(timeout)
	transport := cleanhttp.DefaultPooledTransport()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("ca_cert holds no PEM certificate")
		}
		transport.TLSClientConfig.RootCAs = pool
	}
	// The dial and TLS handshake get their own bound so that an unreachable
	// host fails fast even with a long request_timeout.
	transport.TLSHandshakeTimeout = min(timeout, 10*time.Second)
	transport.ResponseHeaderTimeout = timeout
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}
