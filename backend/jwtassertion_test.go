package backend

import (
	"context"
	"crypto/elliptic"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
)

// Client authentication beyond the shared secret, discovery, rotation
// fallback and revocation, each on the wire.

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
	rsaPEM, rsaKey := testkeys.RSA(t, 2048)
	ecPEM, ecKey := testkeys.EC(t, elliptic.P256())
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
	keyPEM, _ := testkeys.RSA(t, 2048)
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
	keyPEM, _ := testkeys.RSA(t, 2048)
	e.Signer, _ = NewAssertionSigner(keyPEM, "", "")
	e.ClientAuth = ClientAuthPrivateKeyJWT
	_, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials})
	if err == nil || strings.Contains(err.Error(), "eyJ") {
		t.Fatalf("error = %v", err)
	}
}

func TestNewAssertionSignerRefuses(t *testing.T) {
	small, _ := testkeys.RSA(t, 1024)
	p384, _ := testkeys.EC(t, elliptic.P384())
	rsaPEM, _ := testkeys.RSA(t, 2048)
	ecPEM, _ := testkeys.EC(t, elliptic.P256())
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
