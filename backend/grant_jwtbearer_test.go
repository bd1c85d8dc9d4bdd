package backend

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
)

// The JWT bearer grant (RFC 7523 2.1): the assertion's claims and
// signature, and the request a strict endpoint accepts.

func TestGrantAssertionClaims(t *testing.T) {
	keyPEM, key := testkeys.RSA(t, 2048)
	s, err := NewAssertionSigner(keyPEM, "kid-1", "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sign := s.GrantAssertion(BearerClaims{Issuer: "svc@example", Subject: "user@example", Extra: map[string]any{"scope": "a b"}})
	first, err := sign("https://idp.example/token", now)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := sign("https://idp.example/token", now)
	tok, err := jwt.ParseSigned(first, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Headers[0].KeyID != "kid-1" {
		t.Errorf("kid = %q, want kid-1", tok.Headers[0].KeyID)
	}
	var c jwt.Claims
	var raw map[string]any
	if err := tok.Claims(&key.PublicKey, &c, &raw); err != nil {
		t.Fatalf("signature does not verify with the public key: %v", err)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: "svc@example", Subject: "user@example", AnyAudience: jwt.Audience{"https://idp.example/token"}, Time: now}, 0); err != nil {
		t.Errorf("claims: %v (%v)", err, raw)
	}
	if life := c.Expiry.Time().Sub(c.IssuedAt.Time()); life != BearerAssertionLifetime {
		t.Errorf("exp - iat = %v, want %v", life, BearerAssertionLifetime)
	}
	if raw["scope"] != "a b" {
		t.Errorf("scope claim = %v, want \"a b\"", raw["scope"])
	}
	var c2 jwt.Claims
	t2, _ := jwt.ParseSigned(second, []jose.SignatureAlgorithm{jose.RS256})
	_ = t2.Claims(&key.PublicKey, &c2)
	if c.ID == "" || c.ID == c2.ID {
		t.Errorf("jti %q then %q, want a fresh random jti per assertion", c.ID, c2.ID)
	}
	// An explicit audience wins over the token endpoint.
	withAud, _ := s.GrantAssertion(BearerClaims{Issuer: "i", Audience: "api://aud"})("https://idp.example/token", now)
	t3, _ := jwt.ParseSigned(withAud, []jose.SignatureAlgorithm{jose.RS256})
	var c3 jwt.Claims
	_ = t3.Claims(&key.PublicKey, &c3)
	if !c3.Audience.Contains("api://aud") || len(c3.Audience) != 1 {
		t.Errorf("aud = %v, want api://aud", c3.Audience)
	}
}

// Google's wire format: only grant_type and assertion in the body, no
// client authentication, the scopes in the assertion.
func TestJWTBearerNoClientAuthWire(t *testing.T) {
	keyPEM, key := testkeys.RSA(t, 2048)
	s, _ := NewAssertionSigner(keyPEM, "k", "")
	idp := fakeidp.NewJWTBearer(fakeidp.JWTBearerOptions{Key: &key.PublicKey, KeyID: "k", Issuer: "svc@p.iam", Google: true, Scope: "s1 s2"})
	srv := httptest.NewServer(idp)
	defer srv.Close()
	ep := &Endpoint{Config: "g", TokenURL: srv.URL + "/token", ClientID: "svc@p.iam", ClientAuth: ClientAuthNone, HTTP: http.DefaultClient}
	tok, err := ep.RequestToken(context.Background(), TokenRequest{
		Grant:     GrantJWTBearer,
		Assertion: s.GrantAssertion(BearerClaims{Issuer: "svc@p.iam", Extra: map[string]any{"scope": "s1 s2"}}),
	})
	if err != nil {
		t.Fatalf("RequestToken: %v (IdP refusals: %v)", err, idp.Refusals())
	}
	if !idp.Valid(tok.AccessToken) || tok.ExpiresFrom != ExpiresFromExpiresIn {
		t.Fatalf("token %+v not issued by the endpoint", tok)
	}
	reqs := idp.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	if got := reqs[0].Form.Get("grant_type"); got != JWTBearerGrantURN {
		t.Errorf("grant_type = %q, want %s", got, JWTBearerGrantURN)
	}
	if len(reqs[0].Form) != 2 || reqs[0].Header.Get("Authorization") != "" {
		t.Errorf("form %v, Authorization %q; want grant_type and assertion only, no client authentication", reqs[0].Form, reqs[0].Header.Get("Authorization"))
	}
}

// A refused assertion: the IdP's words are quoted for the config, never
// the assertion itself.
func TestJWTBearerRefusedAndRetried(t *testing.T) {
	keyPEM, _ := testkeys.RSA(t, 2048)
	_, other := testkeys.RSA(t, 2048)
	s, _ := NewAssertionSigner(keyPEM, "k", "")
	idp := fakeidp.NewJWTBearer(fakeidp.JWTBearerOptions{Key: &other.PublicKey, KeyID: "k", Issuer: "c", ClientID: "c", ClientSecret: "sec", FormScope: "read"})
	srv := httptest.NewServer(idp)
	defer srv.Close()
	ep := &Endpoint{Config: "gen", TokenURL: srv.URL + "/token", ClientID: "c", ClientSecret: "sec", ClientAuth: ClientAuthBasic, HTTP: http.DefaultClient}
	_, err := ep.RequestToken(context.Background(), TokenRequest{Grant: GrantJWTBearer, Scopes: []string{"read"},
		Assertion: s.GrantAssertion(BearerClaims{Issuer: "c"})})
	if err == nil || !strings.Contains(err.Error(), `config "gen"`) || !strings.Contains(err.Error(), "does not verify with the registered key") {
		t.Fatalf("error %v, want the IdP's invalid_grant quoted for config gen", err)
	}
	if a := idp.Requests()[0].Form.Get("assertion"); strings.Contains(err.Error(), a) {
		t.Error("the error quotes the assertion")
	}
}

// A retried jwt_bearer request carries a newly signed assertion (a fresh
// jti), which servers that refuse replays accept.
func TestJWTBearerRetrySignsAgain(t *testing.T) {
	keyPEM, key := testkeys.RSA(t, 2048)
	s, _ := NewAssertionSigner(keyPEM, "", "")
	strict := fakeidp.NewJWTBearer(fakeidp.JWTBearerOptions{Key: &key.PublicKey, Issuer: "c"})
	var assertions []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		assertions = append(assertions, r.PostForm.Get("assertion"))
		if len(assertions) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		r.Body = io.NopCloser(strings.NewReader(r.PostForm.Encode()))
		strict.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ep := &Endpoint{Config: "c", TokenURL: srv.URL + "/token", ClientID: "c", ClientAuth: ClientAuthNone, HTTP: http.DefaultClient,
		Retry: RetryPolicy{Attempts: 2}}
	if _, err := ep.RequestToken(context.Background(), TokenRequest{Grant: GrantJWTBearer, Assertion: s.GrantAssertion(BearerClaims{Issuer: "c"})}); err != nil {
		t.Fatalf("RequestToken: %v (refusals %v)", err, strict.Refusals())
	}
	if len(assertions) != 2 || assertions[0] == assertions[1] {
		t.Fatalf("%d tries, same assertion=%v; want a second try with a new assertion", len(assertions), len(assertions) == 2 && assertions[0] == assertions[1])
	}
}
