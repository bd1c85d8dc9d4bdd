package backend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Client authentication beyond the shared secret, discovery, rotation
// fallback and revocation, each on the wire.

func rsaKeyPEM(t *testing.T, bits int) (string, *rsa.PrivateKey) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), k
}

func ecKeyPEM(t *testing.T, curve elliptic.Curve) (string, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})), k
}

// verifyAssertion checks the signature with pub and the claims of RFC 7523 3.
func verifyAssertion(t *testing.T, assertion string, pub any, alg jose.SignatureAlgorithm, kid, clientID, aud string, now time.Time) jwt.Claims {
	t.Helper()
	tok, err := jwt.ParseSigned(assertion, []jose.SignatureAlgorithm{alg})
	if err != nil {
		t.Fatalf("assertion does not parse as a %s JWS: %v", alg, err)
	}
	if len(tok.Headers) != 1 || tok.Headers[0].KeyID != kid {
		t.Errorf("kid = %q, want %q", tok.Headers[0].KeyID, kid)
	}
	if typ := tok.Headers[0].ExtraHeaders["typ"]; typ != "JWT" {
		t.Errorf("typ = %v, want JWT", typ)
	}
	var c jwt.Claims
	var raw map[string]any
	if err := tok.Claims(pub, &c, &raw); err != nil {
		t.Fatalf("signature does not verify with the public key: %v", err)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: clientID, Subject: clientID, AnyAudience: jwt.Audience{aud}, Time: now}, 0); err != nil {
		t.Errorf("claims: %v (%v)", err, raw)
	}
	if _, ok := raw["aud"].(string); !ok {
		t.Errorf("aud = %v, want a single string", raw["aud"])
	}
	if c.ID == "" || len(c.ID) < 16 {
		t.Errorf("jti = %q, want a random value", c.ID)
	}
	if c.IssuedAt == nil || c.Expiry == nil {
		t.Fatalf("iat/exp missing: %v", raw)
	}
	if life := c.Expiry.Time().Sub(c.IssuedAt.Time()); life <= 0 || life > 60*time.Second {
		t.Errorf("exp - iat = %v, want (0, 60s]", life)
	}
	if d := c.IssuedAt.Time().Sub(now); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("iat %v is not now (%v)", c.IssuedAt.Time(), now)
	}
	return c
}

func TestPrivateKeyJWTWireFormat(t *testing.T) {
	rsaPEM, rsaKey := rsaKeyPEM(t, 2048)
	ecPEM, ecKey := ecKeyPEM(t, elliptic.P256())
	for _, c := range []struct {
		name, keyPEM, alg, kid string
		pub                    any
		want                   jose.SignatureAlgorithm
	}{
		{"RS256 derived", rsaPEM, "", "key-1", &rsaKey.PublicKey, jose.RS256},
		{"PS256", rsaPEM, "PS256", "", &rsaKey.PublicKey, jose.PS256},
		{"ES256 derived", ecPEM, "", "ec-1", &ecKey.PublicKey, jose.ES256},
	} {
		t.Run(c.name, func(t *testing.T) {
			idp := newRecordingIdP(t, answerOK)
			e := newTestEndpoint(t, "oauth2", idp.tokenURL())
			signer, err := NewAssertionSigner(c.keyPEM, c.kid, c.alg)
			if err != nil {
				t.Fatal(err)
			}
			if signer.Alg() != string(c.want) {
				t.Fatalf("alg = %s, want %s", signer.Alg(), c.want)
			}
			e.ClientAuth, e.ClientSecret, e.Signer = ClientAuthPrivateKeyJWT, "", signer
			for range 2 {
				if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials, Scopes: []string{"api"}}); err != nil {
					t.Fatal(err)
				}
			}
			reqs := idp.requests()
			var jtis []string
			for _, r := range reqs {
				if h := r.Header.Get("Authorization"); h != "" {
					t.Errorf("Authorization header sent with private_key_jwt: %q", h)
				}
				f := r.Form
				if f.Get("client_assertion_type") != ClientAssertionType || f.Get("client_id") != testClientID || f.Has("client_secret") {
					t.Errorf("form = %v", formKeys(f))
				}
				cl := verifyAssertion(t, f.Get("client_assertion"), c.pub, c.want, c.kid, testClientID, idp.tokenURL(), time.Now())
				jtis = append(jtis, cl.ID)
			}
			if len(jtis) != 2 || jtis[0] == jtis[1] {
				t.Errorf("jti not fresh per request: %v", jtis)
			}
		})
	}
}

// Every retry carries a new assertion: a server that remembers jti values
// (oidc-provider does) would refuse a replayed one.
func TestPrivateKeyJWTFreshPerRetry(t *testing.T) {
	idp := newRecordingIdP(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			writeJSONBody(w, 503, `{"error":"temporarily_unavailable"}`)
			return
		}
		answerOK(w, r, n)
	})
	e := newTestEndpoint(t, "oauth2", idp.tokenURL())
	keyPEM, _ := rsaKeyPEM(t, 2048)
	e.Signer, _ = NewAssertionSigner(keyPEM, "", "")
	e.ClientAuth = ClientAuthPrivateKeyJWT
	e.Retry = RetryPolicy{Attempts: 2, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err != nil {
		t.Fatal(err)
	}
	reqs := idp.requests()
	if len(reqs) != 2 || reqs[0].Form.Get("client_assertion") == reqs[1].Form.Get("client_assertion") {
		t.Fatalf("retry resent the same assertion (%d requests)", len(reqs))
	}
}

// An IdP echoing the assertion back does not make it appear in errors.
func TestPrivateKeyJWTAssertionRedacted(t *testing.T) {
	idp := newRecordingIdP(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		r.ParseForm()
		writeJSONBody(w, 400, `{"error":"invalid_request","error_description":"bad `+r.Form.Get("client_assertion")+`"}`)
	})
	e := newTestEndpoint(t, "oauth2", idp.tokenURL())
	keyPEM, _ := rsaKeyPEM(t, 2048)
	e.Signer, _ = NewAssertionSigner(keyPEM, "", "")
	e.ClientAuth = ClientAuthPrivateKeyJWT
	_, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials})
	if err == nil || strings.Contains(err.Error(), "eyJ") {
		t.Fatalf("error = %v", err)
	}
}

func TestNewAssertionSignerRefuses(t *testing.T) {
	small, _ := rsaKeyPEM(t, 1024)
	p384, _ := ecKeyPEM(t, elliptic.P384())
	rsaPEM, _ := rsaKeyPEM(t, 2048)
	ecPEM, _ := ecKeyPEM(t, elliptic.P256())
	for _, c := range []struct{ name, pem, alg, want string }{
		{"not PEM", "hello", "", "no PEM block"},
		{"certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "", "not a private key"},
		{"small RSA", small, "", "at least 2048"},
		{"P-384", p384, "", "only P-256"},
		{"ES256 with RSA", rsaPEM, "ES256", "needs an EC"},
		{"RS256 with EC", ecPEM, "RS256", "needs an RSA"},
		{"HS256", rsaPEM, "HS256", "must be one of"},
		{"two keys", rsaPEM + "\n" + ecPEM, "", "exactly one"},
		{"garbage DER", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "", "cannot be parsed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewAssertionSigner(c.pem, "", c.alg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY-----\nM") {
				t.Fatal("error quotes the key")
			}
		})
	}
	if _, err := NewAssertionSigner(strings.Replace(rsaPEM, "PRIVATE KEY", "RSA PRIVATE KEY", 2), "", ""); err == nil {
		// A PKCS#8 body labelled PKCS#1 must not parse.
		t.Fatal("mislabelled key accepted")
	}
}

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

// Rotation: the current secret refused with invalid_client, the previous
// one is tried once and succeeds; both refused gives one error; other
// refusals do not fall back.
func TestPreviousSecretFallback(t *testing.T) {
	const prev = "previous-secret-77"
	accept := func(secret string) func(http.ResponseWriter, *http.Request, int) {
		return func(w http.ResponseWriter, r *http.Request, n int) {
			r.ParseForm()
			if r.Form.Get("client_secret") == secret {
				answerOK(w, r, n)
				return
			}
			writeJSONBody(w, 401, `{"error":"invalid_client","error_description":"bad secret `+r.Form.Get("client_secret")+`"}`)
		}
	}
	var events []FallbackEvent
	setup := func(h func(http.ResponseWriter, *http.Request, int)) (*Endpoint, *recordingIdP) {
		idp := newRecordingIdP(t, h)
		e := newTestEndpoint(t, "oauth2", idp.tokenURL())
		e.ClientAuth, e.PreviousClientSecret = ClientAuthPost, prev
		events = nil
		e.OnFallback = func(ev FallbackEvent) { events = append(events, ev) }
		return e, idp
	}

	e, idp := setup(accept(prev))
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err != nil {
		t.Fatal(err)
	}
	reqs := idp.requests()
	if len(reqs) != 2 || reqs[0].Form.Get("client_secret") != testClientSecret || reqs[1].Form.Get("client_secret") != prev {
		t.Fatalf("want current then previous, got %d requests", len(reqs))
	}
	if len(events) != 1 || !events[0].Succeeded || events[0].Operation != "token" {
		t.Fatalf("events = %+v", events)
	}

	e, idp = setup(accept("neither"))
	_, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials})
	if !IsInvalidClient(err) || !strings.Contains(err.Error(), "previous credential was refused too") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), prev) || strings.Contains(err.Error(), testClientSecret) {
		t.Fatalf("error quotes a secret: %v", err)
	}
	if len(idp.requests()) != 2 || len(events) != 1 || events[0].Succeeded {
		t.Fatalf("%d requests, events %+v", len(idp.requests()), events)
	}

	e, idp = setup(answerStatus(400, `{"error":"invalid_scope"}`))
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err == nil {
		t.Fatal("want invalid_scope")
	}
	if len(idp.requests()) != 1 || len(events) != 0 {
		t.Fatalf("invalid_scope fell back: %d requests", len(idp.requests()))
	}

	// No previous secret: one request.
	e, idp = setup(accept(prev))
	e.PreviousClientSecret = ""
	e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials})
	if len(idp.requests()) != 1 {
		t.Fatalf("%d requests without a previous secret", len(idp.requests()))
	}
}

// private_key_jwt rotation: the previous key signs the second try.
func TestPreviousKeyFallback(t *testing.T) {
	curPEM, _ := rsaKeyPEM(t, 2048)
	prevPEM, prevKey := rsaKeyPEM(t, 2048)
	idp := newRecordingIdP(t, func(w http.ResponseWriter, r *http.Request, n int) {
		r.ParseForm()
		tok, _ := jwt.ParseSigned(r.Form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.RS256})
		var c jwt.Claims
		if tok != nil && tok.Claims(&prevKey.PublicKey, &c) == nil {
			answerOK(w, r, n)
			return
		}
		writeJSONBody(w, 400, `{"error":"invalid_client"}`)
	})
	e := newTestEndpoint(t, "oauth2", idp.tokenURL())
	e.ClientAuth = ClientAuthPrivateKeyJWT
	e.Signer, _ = NewAssertionSigner(curPEM, "new", "")
	e.PreviousSigner, _ = NewAssertionSigner(prevPEM, "old", "")
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err != nil {
		t.Fatal(err)
	}
	if n := len(idp.requests()); n != 2 {
		t.Fatalf("%d requests", n)
	}
}

func TestChooseClientAuth(t *testing.T) {
	all := HeldCredentials{Secret: true, Key: true, TLSCert: true}
	for _, c := range []struct {
		adv  []string
		held HeldCredentials
		want ClientAuth
	}{
		{[]string{"client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth"}, all, ClientAuthPrivateKeyJWT},
		{[]string{"client_secret_post", "tls_client_auth"}, all, ClientAuthTLS},
		{[]string{"client_secret_post", "client_secret_basic"}, all, ClientAuthBasic},
		{[]string{"client_secret_post", "private_key_jwt"}, HeldCredentials{Secret: true}, ClientAuthPost},
		{nil, HeldCredentials{Secret: true}, ClientAuthBasic},
		{[]string{"private_key_jwt"}, HeldCredentials{Key: true}, ClientAuthPrivateKeyJWT},
	} {
		got, err := ChooseClientAuth(c.adv, c.held)
		if err != nil || got != c.want {
			t.Errorf("ChooseClientAuth(%v, %+v) = %s, %v; want %s", c.adv, c.held, got, err, c.want)
		}
	}
	if _, err := ChooseClientAuth([]string{"private_key_jwt"}, HeldCredentials{Secret: true}); err == nil || !strings.Contains(err.Error(), "private_key_jwt") {
		t.Errorf("no match: %v", err)
	}
	if _, err := ChooseClientAuth(nil, HeldCredentials{Key: true}); err == nil {
		t.Error("no advertised list means client_secret_basic only")
	}
}

// discoveryServer serves metadata at the given well-known paths.
func discoveryServer(t *testing.T, docs map[string]func(base string) string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if doc, ok := docs[r.URL.Path]; ok {
			writeJSONBody(w, 200, doc(srv.URL))
			return
		}
		if r.URL.Path == "/token" || r.URL.Path == "/tenant/token" {
			answerOK(w, r, 0)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func metadataDoc(issuerPath string, extra string) func(string) string {
	return func(base string) string {
		return `{"issuer":"` + base + issuerPath + `","token_endpoint":"` + base + issuerPath + `/token",` +
			`"authorization_endpoint":"` + base + `/authorize","revocation_endpoint":"` + base + `/revoke"` + extra + `}`
	}
}

func TestDiscovery(t *testing.T) {
	hc, _ := NewHTTPClient(5*time.Second, "")

	t.Run("openid-configuration", func(t *testing.T) {
		srv, _ := discoveryServer(t, map[string]func(string) string{
			"/.well-known/openid-configuration": metadataDoc("", `,"token_endpoint_auth_methods_supported":["client_secret_post","private_key_jwt"]`),
		})
		d := &Discovery{Issuer: srv.URL, HTTP: hc}
		md, err := d.Metadata(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if md.TokenEndpoint != srv.URL+"/token" || md.RevocationEndpoint != srv.URL+"/revoke" || md.AuthorizationEndpoint != srv.URL+"/authorize" ||
			md.Source != srv.URL+"/.well-known/openid-configuration" || len(md.TokenEndpointAuthMethods) != 2 {
			t.Fatalf("metadata = %+v", md)
		}
	})

	t.Run("RFC 8414 fallback with a path", func(t *testing.T) {
		srv, _ := discoveryServer(t, map[string]func(string) string{
			"/.well-known/oauth-authorization-server/tenant": metadataDoc("/tenant", ""),
		})
		d := &Discovery{Issuer: srv.URL + "/tenant", HTTP: hc}
		md, err := d.Metadata(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if md.TokenEndpoint != srv.URL+"/tenant/token" || !strings.HasSuffix(md.Source, "/.well-known/oauth-authorization-server/tenant") {
			t.Fatalf("metadata = %+v", md)
		}
	})

	t.Run("issuer mismatch refused", func(t *testing.T) {
		srv, _ := discoveryServer(t, map[string]func(string) string{
			"/.well-known/openid-configuration": func(string) string {
				return `{"issuer":"https://evil.example","token_endpoint":"https://evil.example/token"}`
			},
			"/.well-known/oauth-authorization-server": metadataDoc("", ""),
		})
		d := &Discovery{Issuer: srv.URL, HTTP: hc}
		_, err := d.Metadata(context.Background())
		if err == nil || !strings.Contains(err.Error(), "evil.example") || !strings.Contains(err.Error(), "/.well-known/openid-configuration") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("neither document", func(t *testing.T) {
		srv, _ := discoveryServer(t, nil)
		d := &Discovery{Issuer: srv.URL, HTTP: hc}
		_, err := d.Metadata(context.Background())
		var de *DiscoveryError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "openid-configuration") || !strings.Contains(err.Error(), "oauth-authorization-server") || !strings.Contains(err.Error(), "404") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("endpoint rules", func(t *testing.T) {
		srv, _ := discoveryServer(t, map[string]func(string) string{
			"/.well-known/openid-configuration": func(base string) string {
				return `{"issuer":"` + base + `","token_endpoint":"http://idp.example.com/token"}`
			},
		})
		d := &Discovery{Issuer: srv.URL, HTTP: hc}
		if _, err := d.Metadata(context.Background()); err == nil || !strings.Contains(err.Error(), "token_endpoint") || !strings.Contains(err.Error(), "loopback") {
			t.Fatalf("http token endpoint off loopback: %v", err)
		}
		srv2, _ := discoveryServer(t, map[string]func(string) string{"/.well-known/openid-configuration": metadataDoc("", "")})
		d = &Discovery{Issuer: srv2.URL, HTTP: hc, AllowedHosts: func() ([]string, error) { return []string{"idp.example.com"}, nil }}
		if _, err := d.Metadata(context.Background()); err == nil || !strings.Contains(err.Error(), "allowed_hosts") {
			t.Fatalf("host outside allowed_hosts: %v", err)
		}
	})

	t.Run("cache lifetime", func(t *testing.T) {
		srv, hits := discoveryServer(t, map[string]func(string) string{"/.well-known/openid-configuration": metadataDoc("", "")})
		now := time.Now()
		d := &Discovery{Issuer: srv.URL, HTTP: hc, Now: func() time.Time { return now }}
		for range 3 {
			if _, err := d.Metadata(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if hits.Load() != 1 {
			t.Fatalf("%d reads within the TTL", hits.Load())
		}
		now = now.Add(DiscoveryTTL + time.Second)
		d.Metadata(context.Background())
		if hits.Load() != 2 {
			t.Fatalf("%d reads after the TTL, want 2", hits.Load())
		}
		// The server goes away: stale metadata keeps serving, retried after DiscoveryRetry.
		srv.Close()
		now = now.Add(DiscoveryTTL + time.Second)
		if md, err := d.Metadata(context.Background()); err != nil || md == nil {
			t.Fatalf("stale metadata not served: %v", err)
		}
		now = now.Add(DiscoveryMaxStale)
		if _, err := d.Metadata(context.Background()); err == nil {
			t.Fatal("metadata older than DiscoveryMaxStale served")
		}
	})

	t.Run("bad issuer", func(t *testing.T) {
		for _, iss := range []string{"https://x.example/?a=b", "ftp://x.example", "not a url"} {
			if _, err := WellKnownURLs(iss); err == nil {
				t.Errorf("%q accepted", iss)
			}
		}
	})
}

// An endpoint with discovery takes the token URL and the strongest
// advertised method from the metadata; explicit values win.
func TestEndpointWithDiscovery(t *testing.T) {
	var gotAuth atomic.Value
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			writeJSONBody(w, 200, `{"issuer":"`+srv.URL+`","token_endpoint":"`+srv.URL+`/discovered-token","revocation_endpoint":"`+srv.URL+`/revoke",`+
				`"token_endpoint_auth_methods_supported":["client_secret_post","client_secret_basic"]}`)
		case "/discovered-token", "/explicit-token":
			r.ParseForm()
			gotAuth.Store(r.URL.Path + " basic=" + boolStr(r.Header.Get("Authorization") != "") + " post=" + boolStr(r.PostForm.Has("client_secret")))
			answerOK(w, r, 0)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	hc, _ := NewHTTPClient(5*time.Second, "")
	e := &Endpoint{Config: "d", ClientID: testClientID, ClientSecret: testClientSecret, HTTP: hc, Retry: RetryPolicy{Attempts: 1},
		Discovery: &Discovery{Issuer: srv.URL, HTTP: hc}}
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err != nil {
		t.Fatal(err)
	}
	if gotAuth.Load() != "/discovered-token basic=true post=false" {
		t.Fatalf("got %v", gotAuth.Load())
	}
	e.TokenURL, e.ClientAuth = srv.URL+"/explicit-token", ClientAuthPost
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err != nil {
		t.Fatal(err)
	}
	if gotAuth.Load() != "/explicit-token basic=false post=true" {
		t.Fatalf("got %v", gotAuth.Load())
	}
	tu, ru, a, err := e.Resolved(context.Background())
	if err != nil || tu != srv.URL+"/explicit-token" || ru != srv.URL+"/revoke" || a != ClientAuthPost {
		t.Fatalf("Resolved = %s %s %s %v", tu, ru, a, err)
	}
	// Discovery failure names the URL.
	bad := &Endpoint{Config: "d", ClientID: testClientID, ClientSecret: testClientSecret, HTTP: hc, Retry: RetryPolicy{Attempts: 1},
		Discovery: &Discovery{Issuer: srv.URL + "/nothing", HTTP: hc}}
	_, err = bad.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials})
	var idpErr *IdPError
	if !errors.As(err, &idpErr) || !strings.Contains(err.Error(), srv.URL+"/nothing/.well-known/openid-configuration") {
		t.Fatalf("err = %v", err)
	}
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// Revocation: token and token_type_hint with the client's authentication;
// 200 is success, an error names the status and quotes nothing sent.
func TestRevoke(t *testing.T) {
	idp := newRecordingIdP(t, func(w http.ResponseWriter, r *http.Request, n int) {
		r.ParseForm()
		if r.Form.Get("token") == "bad-token-123" {
			writeJSONBody(w, 400, `{"error":"unsupported_token_type","error_description":"cannot revoke bad-token-123"}`)
			return
		}
		w.WriteHeader(200)
	})
	e := newTestEndpoint(t, "oauth2", idp.tokenURL())
	if err := e.Revoke(context.Background(), "x", HintAccessToken); !errors.Is(err, ErrNoRevocationEndpoint) {
		t.Fatalf("without revocation_url: %v", err)
	}
	e.RevocationURL = idp.URL + "/revoke"
	if err := e.Revoke(context.Background(), "rt-1", HintRefreshToken); err != nil {
		t.Fatal(err)
	}
	r := idp.requests()[0]
	if r.Path != "/revoke" || r.Form.Get("token") != "rt-1" || r.Form.Get("token_type_hint") != "refresh_token" || r.Header.Get("Authorization") != basicOf(testClientID+":"+strings.NewReplacer("+", "%2B", "/", "%2F", ":", "%3A", "=", "%3D", "%", "%25").Replace(testClientSecret)) {
		t.Fatalf("request = %+v", r)
	}
	err := e.Revoke(context.Background(), "bad-token-123", HintAccessToken)
	if err == nil || !strings.Contains(err.Error(), "unsupported_token_type") || strings.Contains(err.Error(), "bad-token-123") {
		t.Fatalf("err = %v", err)
	}
}
