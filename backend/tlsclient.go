package backend

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ParseClientCertificate reads a PEM certificate chain (leaf first) and its
// PEM private key for tls_client_auth (RFC 8705 2.1). Errors never quote the
// key. The certificate must be currently valid.
func ParseClientCertificate(certPEM, keyPEM string, now time.Time) (tls.Certificate, error) {
	if _, err := ParsePrivateKeyPEM(keyPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("tls_client_key %w", err)
	}
	cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		if len(cert.Certificate) == 0 {
			return tls.Certificate{}, errors.New("tls_client_cert holds no usable PEM certificate, or it does not match tls_client_key")
		}
		return tls.Certificate{}, errors.New("tls_client_cert does not match tls_client_key")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return tls.Certificate{}, errors.New("tls_client_cert cannot be parsed")
	}
	if now.After(leaf.NotAfter) {
		return tls.Certificate{}, fmt.Errorf("tls_client_cert expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	cert.Leaf = leaf
	return cert, nil
}

// UseClientCertificate makes an HTTP client from NewHTTPClient present cert
// in every TLS handshake.
func UseClientCertificate(c *http.Client, cert tls.Certificate) error {
	t, ok := c.Transport.(*http.Transport)
	if !ok || t.TLSClientConfig == nil {
		return errors.New("the HTTP client cannot take a client certificate")
	}
	t.TLSClientConfig.Certificates = []tls.Certificate{cert}
	return nil
}
