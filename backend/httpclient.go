package backend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
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

// documentError is why getDocument could not read a JSON document; Status
// is the answer's HTTP status (0 when there was none).
type documentError struct {
	Status    int
	Temporary bool
	Reason    string
}

func (e *documentError) Error() string { return e.Reason }

// getDocument GETs a JSON document the engine reads from an IdP (metadata,
// a key set): no redirect followed, at most MaxResponseBytes, 200 only.
func getDocument(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &documentError{Reason: "the URL cannot be used"}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, &documentError{Temporary: ctx.Err() == nil && !errors.Is(err, ErrHostNotAllowed), Reason: networkDetail(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	fail := func(temporary bool, format string, args ...any) ([]byte, error) {
		return nil, &documentError{Status: resp.StatusCode, Temporary: temporary, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case err != nil:
		return fail(true, "the answer could not be read")
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fail(false, "HTTP %d: redirects are not followed", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return fail(resp.StatusCode >= 500 || resp.StatusCode == 429, "HTTP %d", resp.StatusCode)
	case len(body) > MaxResponseBytes:
		return fail(false, "the answer is larger than %d bytes", MaxResponseBytes)
	}
	return body, nil
}
