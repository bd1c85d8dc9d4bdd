package backend

import (
	"crypto/tls"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewHTTPClient(t *testing.T) {
	hc, err := NewHTTPClient(0, "")
	if err != nil {
		t.Fatal(err)
	}
	if hc.Timeout != DefaultRequestTimeout {
		t.Errorf("Timeout = %v, want DefaultRequestTimeout", hc.Timeout)
	}
	if hc, _ = NewHTTPClient(3*time.Second, ""); hc.Timeout != 3*time.Second {
		t.Errorf("Timeout = %v, want 3s", hc.Timeout)
	}
	if _, err := NewHTTPClient(time.Second, "not a certificate"); err == nil || !strings.Contains(err.Error(), "ca_cert") {
		t.Errorf("garbage ca_cert: %v", err)
	}
}

// ca_cert is what makes a private IdP's certificate trusted; without it
// the certificate is refused.
func TestNewHTTPClientCACert(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONBody(w, http.StatusOK, okTokenBody)
	}))
	defer srv.Close()
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))

	trusting, err := NewHTTPClient(5*time.Second, caPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer trusting.CloseIdleConnections()
	resp, err := trusting.Post(srv.URL, "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatalf("with ca_cert: %v", err)
	}
	resp.Body.Close()

	plain, _ := NewHTTPClient(5*time.Second, "")
	defer plain.CloseIdleConnections()
	if resp, err := plain.Post(srv.URL, "application/x-www-form-urlencoded", nil); err == nil {
		resp.Body.Close()
		t.Error("an untrusted certificate was accepted without ca_cert")
	}
}

// TLS 1.2 is the minimum: an IdP that speaks at most TLS 1.1 is refused in
// the handshake, before any credential is sent; the same server offering
// TLS 1.2 is accepted. (Go's client would also refuse below TLS 1.2 when
// MinVersion is left 0, so the client's setting is checked too: it must
// not depend on the toolchain's default, nor be lowered.)
func TestNewHTTPClientRefusesTLS11(t *testing.T) {
	hc, err := NewHTTPClient(time.Second, "")
	if err != nil {
		t.Fatal(err)
	}
	if v := hc.Transport.(*http.Transport).TLSClientConfig.MinVersion; v != tls.VersionTLS12 {
		t.Errorf("TLS MinVersion is %s, want TLS 1.2 set explicitly", tls.VersionName(v))
	}
	for _, c := range []struct {
		name      string
		max       uint16
		wantError bool
	}{
		{"TLS 1.1 only", tls.VersionTLS11, true},
		{"TLS 1.0 only", tls.VersionTLS10, true},
		{"TLS 1.2", tls.VersionTLS12, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var requests atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				writeJSONBody(w, http.StatusOK, okTokenBody)
			}))
			srv.TLS = &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: c.max}
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			srv.StartTLS()
			defer srv.Close()
			caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
			hc, err := NewHTTPClient(5*time.Second, caPEM)
			if err != nil {
				t.Fatal(err)
			}
			defer hc.CloseIdleConnections()
			resp, err := hc.Post(srv.URL, "application/x-www-form-urlencoded", strings.NewReader("client_secret=s"))
			if !c.wantError {
				if err != nil {
					t.Fatalf("TLS 1.2 server refused: %v", err)
				}
				resp.Body.Close()
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("a server speaking at most %s was accepted", tls.VersionName(c.max))
			}
			if !strings.Contains(err.Error(), "protocol version") {
				t.Errorf("error %q does not say the protocol version was refused", err)
			}
			if n := requests.Load(); n != 0 {
				t.Errorf("the server received %d requests; the handshake must fail first", n)
			}
		})
	}
}
