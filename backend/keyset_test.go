package backend

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// RFC 7638 section 3.1's example RSA key and its SHA-256 thumbprint.
const (
	rfc7638N          = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	rfc7638Thumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
)

func TestKeyThumbprintRFC7638Vector(t *testing.T) {
	n, err := base64.RawURLEncoding.DecodeString(rfc7638N)
	if err != nil {
		t.Fatal(err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	got, err := KeyThumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	if got != rfc7638Thumbprint {
		t.Fatalf("thumbprint of RFC 7638 3.1's key = %s, want %s", got, rfc7638Thumbprint)
	}
}

// b64 is base64url without padding of b left-padded to size bytes.
func b64(b []byte, size int) string {
	padded := make([]byte, size-len(b), size)
	return base64.RawURLEncoding.EncodeToString(append(padded, b...))
}

// thumbprintOf is RFC 7638 3.2 by hand: the required members in
// lexicographic order, no white space, SHA-256, base64url.
func thumbprintOf(members string) string {
	sum := sha256.Sum256([]byte(members))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// The kid of a generated key is its thumbprint, computed here independently
// of go-jose for EC (P-256) and OKP (Ed25519) keys, and RSA.
func TestGeneratedKeyKidIsItsThumbprint(t *testing.T) {
	for _, alg := range GeneratedKeyAlgs {
		t.Run(alg, func(t *testing.T) {
			keyPEM, err := GenerateKeyPEM(alg)
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewGeneratedSigner(keyPEM, alg)
			if err != nil {
				t.Fatal(err)
			}
			var want string
			switch k := s.Public().(type) {
			case *ecdsa.PublicKey:
				want = thumbprintOf(`{"crv":"P-256","kty":"EC","x":"` + b64(k.X.Bytes(), 32) + `","y":"` + b64(k.Y.Bytes(), 32) + `"}`)
			case ed25519.PublicKey:
				want = thumbprintOf(`{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(k) + `"}`)
			case *rsa.PublicKey:
				want = thumbprintOf(`{"e":"` + base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()) + `","kty":"RSA","n":"` +
					base64.RawURLEncoding.EncodeToString(k.N.Bytes()) + `"}`)
			default:
				t.Fatalf("a %s key is %T", alg, k)
			}
			if s.KeyID() != want {
				t.Fatalf("kid %s, want the RFC 7638 thumbprint %s", s.KeyID(), want)
			}
			// The assertion names it and verifies with the published JWK.
			tok, err := s.Assertion("client", "https://idp.example/token", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatal(err)
			}
			if parsed.Headers[0].KeyID != want {
				t.Fatalf("assertion kid %q, want %s", parsed.Headers[0].KeyID, want)
			}
			jwk := s.PublicJWK()
			var claims jwt.Claims
			if err := parsed.Claims(jwk.Key, &claims); err != nil {
				t.Fatalf("the assertion does not verify with the published key: %v", err)
			}
		})
	}
}

func TestGeneratedKeyRefusals(t *testing.T) {
	if _, err := GenerateKeyPEM("HS256"); err == nil || !strings.Contains(err.Error(), "signing_alg") {
		t.Fatalf("HS256: err %v, want one naming signing_alg", err)
	}
	ec, _ := GenerateKeyPEM("ES256")
	if _, err := NewGeneratedSigner(ec, "RS256"); err == nil {
		t.Fatal("an EC key was taken for RS256")
	} else if strings.Contains(err.Error(), "PRIVATE") || strings.Contains(err.Error(), ec[40:60]) {
		t.Fatalf("the error quotes the key: %v", err)
	}
}

// The timeline: next before signs_from, signing until signs_until,
// retiring until published_until, then gone from the JWKS; the JWKS holds
// public members only.
func TestKeySetTimeline(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	mk := func(alg string) *AssertionSigner {
		p, err := GenerateKeyPEM(alg)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewGeneratedSigner(p, alg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := mk("ES256"), mk("RS256")
	lead, overlap := time.Hour, 30*time.Minute
	switchAt := t0.Add(lead)
	set := NewKeySet(
		SetKey{Signer: a, Public: a.PublicJWK(), SignsFrom: t0.Add(-24 * time.Hour), SignsUntil: switchAt, PublishedUntil: switchAt.Add(overlap)},
		SetKey{Signer: b, Public: b.PublicJWK(), SignsFrom: switchAt},
	)
	kids := func(now time.Time) []string {
		raw, err := set.JWKSAt(now)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), `"d"`) || strings.Contains(string(raw), `"p"`) {
			t.Fatalf("the JWKS holds private members: %s", raw)
		}
		var doc struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range doc.Keys {
			out = append(out, k["kid"].(string))
			if k["use"] != "sig" || k["alg"] == "" {
				t.Fatalf("JWK without use=sig or alg: %v", k)
			}
		}
		return out
	}
	for _, c := range []struct {
		at      time.Time
		signer  *AssertionSigner
		jwks    []string
		stateA  string
		stateB  string
		comment string
	}{
		{t0, a, []string{a.KeyID(), b.KeyID()}, KeySigning, KeyNext, "b published, a signs"},
		{switchAt.Add(-time.Second), a, []string{a.KeyID(), b.KeyID()}, KeySigning, KeyNext, "a second before the switch"},
		{switchAt, b, []string{a.KeyID(), b.KeyID()}, KeyRetiring, KeySigning, "at the switch"},
		{switchAt.Add(overlap - time.Second), b, []string{a.KeyID(), b.KeyID()}, KeyRetiring, KeySigning, "end of the overlap"},
		{switchAt.Add(overlap), b, []string{b.KeyID()}, KeyRetired, KeySigning, "a gone"},
	} {
		if got := set.SignerAt(c.at); got != c.signer {
			t.Errorf("%s: signer %v, want %s", c.comment, got.KeyID(), c.signer.KeyID())
		}
		if got := kids(c.at); strings.Join(got, ",") != strings.Join(c.jwks, ",") {
			t.Errorf("%s: JWKS kids %v, want %v", c.comment, got, c.jwks)
		}
		keys := set.keys
		if keys[0].StateAt(c.at) != c.stateA || keys[1].StateAt(c.at) != c.stateB {
			t.Errorf("%s: states %s/%s, want %s/%s", c.comment, keys[0].StateAt(c.at), keys[1].StateAt(c.at), c.stateA, c.stateB)
		}
	}
}
