package backend

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
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
