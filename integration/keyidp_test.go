//go:build integration

package integration

// A token endpoint for the key-based client authentication methods, which
// internal/fakeidp does not speak: private_key_jwt (RFC 7523; the
// assertion's signature is checked against the client's public key) and
// tls_client_auth (RFC 8705; a client certificate in the handshake). It
// records every token it issues and every assertion it receives, so the
// audit test can look for them.

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

type keyIdP struct {
	URL    string
	CAPEM  string // the TLS server's certificate (tls mode)
	public crypto.PublicKey
	mu     sync.Mutex
	issued []string
}

// startKeyIdP serves a private_key_jwt endpoint over http (public: the
// client's public key), or, with public nil, a tls_client_auth endpoint over
// TLS that requires a client certificate.
func startKeyIdP(t *testing.T, public crypto.PublicKey) *keyIdP {
	t.Helper()
	k := &keyIdP{public: public}
	srv := httptest.NewUnstartedServer(k)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if public == nil {
		srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
		srv.StartTLS()
		k.CAPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	k.URL = srv.URL + "/token"
	return k
}

func (k *keyIdP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	authenticated := false
	if k.public == nil {
		authenticated = r.TLS != nil && len(r.TLS.PeerCertificates) > 0
	} else if r.Form.Get("client_assertion_type") == jwtBearer {
		jws, err := jose.ParseSigned(r.Form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256})
		authenticated = err == nil && func() bool { _, err := jws.Verify(k.public); return err == nil }()
		k.record(r.Form.Get("client_assertion"))
	}
	if !authenticated {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	buf := make([]byte, 16)
	rand.Read(buf)
	tok := "kt-" + hex.EncodeToString(buf)
	k.record(tok)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
}

func (k *keyIdP) record(s string) {
	if s == "" {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.issued = append(k.issued, s)
}

// Seen is every token issued and every client assertion received.
func (k *keyIdP) Seen() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.issued...)
}

func writeOAuthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code})
}
