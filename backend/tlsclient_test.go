package backend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tlsCerts makes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all PEM.
type tlsCerts struct {
	caPool                *x509.CertPool
	caPEM                 string
	serverCert            tls.Certificate
	clientCert, clientKey string
}

func newTLSCerts(t *testing.T) tlsCerts {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, usage x509.ExtKeyUsage, server bool) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
		}
		if server {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalPKCS8PrivateKey(k)
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
	}
	sc, sk := issue("127.0.0.1", x509.ExtKeyUsageServerAuth, true)
	serverCert, err := tls.X509KeyPair([]byte(sc), []byte(sk))
	if err != nil {
		t.Fatal(err)
	}
	cc, ck := issue(testClientID, x509.ExtKeyUsageClientAuth, false)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return tlsCerts{caPool: pool, caPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		serverCert: serverCert, clientCert: cc, clientKey: ck}
}

// tls_client_auth: the handshake presents the certificate to a server that
// requires and verifies one; the body names client_id and holds no secret.
func TestTLSClientAuth(t *testing.T) {
	certs := newTLSCerts(t)
	var gotCN atomic.Value
	var form atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			gotCN.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		r.ParseForm()
		form.Store(r.PostForm)
		if r.Header.Get("Authorization") != "" {
			writeJSONBody(w, 400, `{"error":"invalid_request"}`)
			return
		}
		writeJSONBody(w, 200, okTokenBody)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{certs.serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: certs.caPool}
	srv.StartTLS()
	defer srv.Close()

	hc, err := NewHTTPClient(5*time.Second, certs.caPEM)
	if err != nil {
		t.Fatal(err)
	}
	e := &Endpoint{Config: "mtls", TokenURL: srv.URL + "/token", ClientID: testClientID, ClientAuth: ClientAuthTLS, HTTP: hc, Retry: RetryPolicy{Attempts: 1}}
	// Without the certificate the handshake fails.
	e.TLSClientCert = true
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err == nil {
		t.Fatal("request without a client certificate succeeded")
	}
	cert, err := ParseClientCertificate(certs.clientCert, certs.clientKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	hc2, _ := NewHTTPClient(5*time.Second, certs.caPEM)
	if err := UseClientCertificate(hc2, cert); err != nil {
		t.Fatal(err)
	}
	e.HTTP = hc2
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err != nil {
		t.Fatal(err)
	}
	if gotCN.Load() != testClientID {
		t.Errorf("server saw client certificate %v", gotCN.Load())
	}
	f := form.Load().(url.Values)
	if f["client_id"][0] != testClientID || f["client_secret"] != nil || f["client_assertion"] != nil {
		t.Errorf("form = %v", f)
	}
	// Mismatched pair and expired certificates are refused.
	_, otherKey := newTLSCerts(t).clientCert, newTLSCerts(t).clientKey
	if _, err := ParseClientCertificate(certs.clientCert, otherKey, time.Now()); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}
	if _, err := ParseClientCertificate(certs.clientCert, certs.clientKey, time.Now().Add(48*time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired: %v", err)
	}
}
