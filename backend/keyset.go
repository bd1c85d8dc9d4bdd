package backend

// Keys made in Vault (generate_key): generation, RFC 7638 thumbprints as
// kids, and the set of keys a config signs with and publishes as a JWKS
// (RFC 7517). The set is a timeline fixed when each key is made: which key
// signs, and which are published, follows from the clock alone, so every
// node answers the same without asking storage.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// GeneratedKeyAlgs are the signing_alg values of keys made in Vault; the
// first is the default.
var GeneratedKeyAlgs = []string{string(jose.ES256), string(jose.RS256), string(jose.PS256), string(jose.EdDSA)}

// generatedRSABits is the size of a generated RSA key.
const generatedRSABits = 2048

// GenerateKeyPEM makes a new private key for alg and returns it as PKCS#8
// PEM, the form it is stored in.
func GenerateKeyPEM(alg string) (string, error) {
	var key any
	var err error
	switch jose.SignatureAlgorithm(alg) {
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256, jose.PS256:
		key, err = rsa.GenerateKey(rand.Reader, generatedRSABits)
	case jose.EdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return "", fmt.Errorf("signing_alg must be one of %s, not %q", strings.Join(GeneratedKeyAlgs, ", "), Sanitize(alg, 20))
	}
	if err != nil {
		return "", fmt.Errorf("generating a %s key failed: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("encoding the %s key failed: %w", alg, err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// KeyThumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url) of a
// public key: the kid of a generated key.
func KeyThumbprint(pub crypto.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("the key's thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// NewGeneratedSigner prepares a signer for a generated key (PKCS#8 PEM, as
// GenerateKeyPEM makes it): its kid is the key's RFC 7638 thumbprint.
// Errors never quote the key.
func NewGeneratedSigner(keyPEM, alg string) (*AssertionSigner, error) {
	block, _ := pem.Decode([]byte(keyPEM))
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("the generated key is not a PKCS#8 PEM block")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("the generated key cannot be parsed")
	}
	key, ok := parsed.(crypto.Signer)
	if !ok || !keyFits(key, jose.SignatureAlgorithm(alg)) {
		return nil, fmt.Errorf("the generated key is no %s key", Sanitize(alg, 20))
	}
	kid, err := KeyThumbprint(key.Public())
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("the generated key cannot sign %s: %w", Sanitize(alg, 20), err)
	}
	return &AssertionSigner{key: key, alg: jose.SignatureAlgorithm(alg), kid: kid, signer: signer}, nil
}

// keyFits says whether key is of the type alg signs with.
func keyFits(key crypto.Signer, alg jose.SignatureAlgorithm) bool {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return alg == jose.ES256 && k.Curve == elliptic.P256()
	case *rsa.PrivateKey:
		return alg == jose.RS256 || alg == jose.PS256
	case ed25519.PrivateKey:
		return alg == jose.EdDSA
	}
	return false
}

// PublicJWK is the public half of a signer's key as a JWK (kid, alg,
// use=sig): no private member can be in it.
func (s *AssertionSigner) PublicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: s.key.Public(), KeyID: s.kid, Algorithm: string(s.alg), Use: "sig"}
}

// PublicKeyPEM is a public key as a PEM "PUBLIC KEY" (SubjectPublicKeyInfo)
// block, for IdPs that take an uploaded key rather than a JWKS URL.
func PublicKeyPEM(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// Key states along a generated key's timeline.
const (
	KeyNext     = "next"     // published, not yet signing
	KeySigning  = "signing"  // published and signing
	KeyRetiring = "retiring" // published, no longer signing
	KeyRetired  = "retired"  // past its overlap: no longer published
)

// SetKey is one key of a set and its timeline. A zero SignsUntil or
// PublishedUntil is open-ended; a nil Signer is a key published only (a
// former pasted private_key kept while the IdP moves to the JWKS URL).
type SetKey struct {
	Signer         *AssertionSigner
	Public         jose.JSONWebKey
	SignsFrom      time.Time
	SignsUntil     time.Time
	PublishedUntil time.Time
}

// StateAt is the key's state at now; a key published only is retiring.
func (k SetKey) StateAt(now time.Time) string {
	if k.Signer == nil && k.PublishedUntil.IsZero() {
		return KeyRetiring
	}
	return KeyStateAt(now, k.SignsFrom, k.SignsUntil, k.PublishedUntil)
}

// KeyStateAt is the state at now of a key with that timeline.
func KeyStateAt(now, signsFrom, signsUntil, publishedUntil time.Time) string {
	switch {
	case !publishedUntil.IsZero() && !now.Before(publishedUntil):
		return KeyRetired
	case now.Before(signsFrom):
		return KeyNext
	case signsUntil.IsZero() || now.Before(signsUntil):
		return KeySigning
	}
	return KeyRetiring
}

// KeySet is a config's keys, oldest first. It is never changed once made.
type KeySet struct{ keys []SetKey }

// NewKeySet makes a set of keys.
func NewKeySet(keys ...SetKey) *KeySet { return &KeySet{keys: keys} }

// SignerAt is the key that signs at now: the newest whose signing time has
// come and not ended; nil when none does.
func (s *KeySet) SignerAt(now time.Time) *AssertionSigner {
	if s == nil {
		return nil
	}
	for i := len(s.keys) - 1; i >= 0; i-- {
		if s.keys[i].StateAt(now) == KeySigning {
			return s.keys[i].Signer
		}
	}
	return nil
}

// PublishedAt are the keys published at now: every key that signs, will
// sign, or stopped signing less than its overlap ago.
func (s *KeySet) PublishedAt(now time.Time) []SetKey {
	if s == nil {
		return nil
	}
	var out []SetKey
	for _, k := range s.keys {
		if k.StateAt(now) != KeyRetired {
			out = append(out, k)
		}
	}
	return out
}

// JWKSAt is the JSON Web Key Set (RFC 7517 5) published at now: public
// keys only.
func (s *KeySet) JWKSAt(now time.Time) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range s.PublishedAt(now) {
		set.Keys = append(set.Keys, k.Public.Public())
	}
	return json.Marshal(set)
}

// KeyRing holds a config's current key set for its endpoint. A set that
// another node rewrote still signs correctly (the timeline is fixed), and
// whoever has storage at hand loads the new one. Changes are counted, and
// a set is stored with the count it was read at, so that a change marked
// while the set was being read leaves the ring stale.
type KeyRing struct {
	set            atomic.Pointer[KeySet]
	marked, loaded atomic.Uint64
}

// NewKeyRing is a ring whose set is still to be loaded.
func NewKeyRing() *KeyRing {
	r := &KeyRing{}
	r.marked.Store(1)
	return r
}

// Load is the ring's set (nil on a nil ring or before the first Store).
func (r *KeyRing) Load() *KeySet {
	if r == nil {
		return nil
	}
	return r.set.Load()
}

// Generation is taken before the stored set is read, for Store.
func (r *KeyRing) Generation() uint64 { return r.marked.Load() }

// Store puts a set read from storage at generation gen in the ring.
func (r *KeyRing) Store(s *KeySet, gen uint64) {
	r.set.Store(s)
	r.loaded.Store(gen)
}

// MarkStale says the stored set changed, and returns the generation a set
// read (or written) after the change is stored with.
func (r *KeyRing) MarkStale() uint64 { return r.marked.Add(1) }

// Stale says the set must be loaded again.
func (r *KeyRing) Stale() bool { return r.loaded.Load() != r.marked.Load() }

// signerAt is the key the endpoint signs with at now: its generated key
// set's signing key when it has one, else its pasted private_key.
func (e *Endpoint) signerAt(now time.Time) *AssertionSigner {
	if e.Keys != nil {
		return e.Keys.Load().SignerAt(now)
	}
	return e.Signer
}

// GrantAssertion signs jwt_bearer grant assertions (RFC 7523 2.1) with the
// key that signs at each try's time; nil when the endpoint holds no key.
func (e *Endpoint) GrantAssertion(c BearerClaims) AssertionFunc {
	if e.Keys == nil {
		if e.Signer == nil {
			return nil
		}
		return e.Signer.GrantAssertion(c)
	}
	return func(tokenURL string, now time.Time) (string, error) {
		s := e.signerAt(now)
		if s == nil {
			return "", errors.New("no generated key signs now")
		}
		return s.GrantAssertion(c)(tokenURL, now)
	}
}

// previousSecretMethod: after a move from a client secret to keys made in
// Vault, the endpoint with the former secret and its former method, tried
// once when the assertion is refused with invalid_client (the IdP may be
// switched before or after Vault); nil when there is none.
func (e *Endpoint) previousSecretMethod() *Endpoint {
	if e.Keys == nil || e.PreviousClientSecret == "" || (e.PreviousClientAuth != ClientAuthBasic && e.PreviousClientAuth != ClientAuthPost) {
		return nil
	}
	p := *e
	// Swapped rather than cleared, so that the redactor still knows both.
	p.ClientAuth, p.Keys = e.PreviousClientAuth, nil
	p.ClientSecret, p.PreviousClientSecret = e.PreviousClientSecret, e.ClientSecret
	return &p
}
