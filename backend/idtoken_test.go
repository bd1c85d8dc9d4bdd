package backend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// An issuer with one EC key: its JWK Set, and ID tokens signed with it.
type testIssuer struct {
	key     *ecdsa.PrivateKey
	kid     string
	fetches atomic.Int32
	srv     *httptest.Server
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := &testIssuer{key: k, kid: "k1"}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), KeyID: is.kid, Use: "sig", Algorithm: "ES256"}}})
	}))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *testIssuer) sign(t *testing.T, key *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (is *testIssuer) keySet(now func() time.Time) *IdPKeySet {
	return &IdPKeySet{URL: func(context.Context) (string, error) { return is.srv.URL, nil }, HTTP: is.srv.Client(), Now: now}
}

// An ID token passes only when signed by the issuer's key and naming the
// issuer, the client among its audience, a future exp and the login's
// nonce; each other case is refused, saying which check failed.
func TestVerifyIDToken(t *testing.T) {
	is := newTestIssuer(t)
	now := time.Now()
	check := IDTokenCheck{Issuer: "https://idp.example", ClientID: "app", Nonce: "n-123", Keys: is.keySet(func() time.Time { return now }), Now: now}
	good := map[string]any{"iss": "https://idp.example", "aud": []string{"other", "app"}, "sub": "alice", "exp": now.Add(time.Hour).Unix(), "nonce": "n-123"}
	claims, err := VerifyIDToken(context.Background(), is.sign(t, is.key, is.kid, good), check)
	if err != nil || claims["sub"] != "alice" {
		t.Fatalf("a good ID token: %v %v", claims, err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for key, val := range good {
			c[key] = val
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	for _, c := range []struct {
		name, raw, want string
	}{
		{"signed by another key", is.sign(t, other, is.kid, good), "signature"},
		{"another issuer", is.sign(t, is.key, is.kid, with("iss", "https://evil.example")), "iss"},
		{"not for the client", is.sign(t, is.key, is.kid, with("aud", "other")), "aud"},
		{"expired", is.sign(t, is.key, is.kid, with("exp", now.Add(-2*time.Minute).Unix())), "expired"},
		{"no exp", is.sign(t, is.key, is.kid, with("exp", nil)), "exp"},
		{"another login's nonce", is.sign(t, is.key, is.kid, with("nonce", "n-999")), "nonce"},
		{"no nonce", is.sign(t, is.key, is.kid, with("nonce", nil)), "nonce"},
		{"not a JWS", "not.a.jws", "not a JWS"},
		{"none", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.", "not a JWS"},
		{"no token", "", "no ID token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := VerifyIDToken(context.Background(), c.raw, check)
			if !IsIDTokenError(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want a refusal naming %q", err, c.want)
			}
		})
	}
}

// The key set is read once per JWKSTTL; an unknown kid reads it again, but
// no more than once per JWKSRefetchAfter however many tokens name one.
func TestKeySetRefetchesRarely(t *testing.T) {
	is := newTestIssuer(t)
	now := time.Now()
	ks := is.keySet(func() time.Time { return now })
	for range 5 {
		if keys, err := ks.Key(context.Background(), "k1"); err != nil || len(keys) != 1 {
			t.Fatalf("Key(k1) = %v, %v", keys, err)
		}
	}
	for range 5 {
		if keys, _ := ks.Key(context.Background(), "made-up"); len(keys) != 0 {
			t.Fatal("a key for a kid the set lacks")
		}
	}
	if n := is.fetches.Load(); n != 1 {
		t.Fatalf("%d reads of the key set, want 1 (unknown kids within a minute of the read)", n)
	}
	now = now.Add(JWKSRefetchAfter + time.Second)
	ks.Key(context.Background(), "made-up")
	if n := is.fetches.Load(); n != 2 {
		t.Fatalf("%d reads, want a second one for an unknown kid after JWKSRefetchAfter", n)
	}
}
