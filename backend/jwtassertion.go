package backend

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Client assertions (RFC 7523 2.2, OIDC Core 9 private_key_jwt).
const (
	// ClientAssertionType is the client_assertion_type of a JWT assertion.
	ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// AssertionLifetime is how far ahead of its iat an assertion expires.
	AssertionLifetime = 60 * time.Second
	// MinRSABits is the smallest RSA key accepted for signing.
	MinRSABits = 2048
)

// SigningAlgs are the signing_alg values accepted for private_key_jwt.
var SigningAlgs = []string{string(jose.RS256), string(jose.PS256), string(jose.ES256)}

// AssertionSigner signs client assertions with one private key.
type AssertionSigner struct {
	key    crypto.Signer
	alg    jose.SignatureAlgorithm
	kid    string
	signer jose.Signer
}

// NewAssertionSigner parses a PEM private key (PKCS#8, PKCS#1 RSA or SEC1
// EC; never encrypted) and prepares a signer. alg may be empty: RS256 for
// an RSA key, ES256 for a P-256 key. kid, when set, goes in the JWT header.
// Errors never quote the key.
func NewAssertionSigner(keyPEM, kid, alg string) (*AssertionSigner, error) {
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	a, err := signingAlgFor(key, alg)
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: a, Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("the private key cannot sign %s: %w", a, err)
	}
	return &AssertionSigner{key: key, alg: a, kid: kid, signer: signer}, nil
}

// Alg is the JWS algorithm the signer uses.
func (s *AssertionSigner) Alg() string { return string(s.alg) }

// KeyID is the kid header value ("" when none).
func (s *AssertionSigner) KeyID() string { return s.kid }

// Public is the public half of the key (for tests and for showing a JWK).
func (s *AssertionSigner) Public() crypto.PublicKey { return s.key.Public() }

// Assertion returns a signed client assertion: iss = sub = clientID,
// aud = audience (the token endpoint), a fresh random jti, iat = now and
// exp = now + AssertionLifetime.
func (s *AssertionSigner) Assertion(clientID, audience string, now time.Time) (string, error) {
	jti := make([]byte, 18)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	claims := jwt.Claims{
		Issuer:   clientID,
		Subject:  clientID,
		Audience: jwt.Audience{audience},
		ID:       base64.RawURLEncoding.EncodeToString(jti),
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(AssertionLifetime)),
	}
	out, err := jwt.Signed(s.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing the client assertion failed: %w", err)
	}
	return out, nil
}

// ParsePrivateKeyPEM reads one unencrypted RSA (at least MinRSABits) or
// ECDSA P-256 private key.
func ParsePrivateKeyPEM(keyPEM string) (crypto.Signer, error) {
	block, rest := pem.Decode([]byte(strings.TrimSpace(keyPEM)))
	if block == nil {
		return nil, errors.New("holds no PEM block")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, errors.New("must hold exactly one PEM private key")
	}
	if strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") || block.Type == "ENCRYPTED PRIVATE KEY" {
		return nil, errors.New("is encrypted; write the key unencrypted (Vault's storage encrypts it)")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", Sanitize(block.Type, 40))
	}
	if err != nil {
		return nil, errors.New("the PEM private key cannot be parsed")
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("RSA key of %d bits; at least %d are required", k.N.BitLen(), MinRSABits)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("EC key on %s; only P-256 (ES256) is supported", k.Curve.Params().Name)
		}
		return k, nil
	}
	return nil, fmt.Errorf("a %T key is not supported; use RSA or EC P-256", key)
}

// signingAlgFor checks alg against the key type, or derives it.
func signingAlgFor(key crypto.Signer, alg string) (jose.SignatureAlgorithm, error) {
	_, isRSA := key.(*rsa.PrivateKey)
	switch jose.SignatureAlgorithm(alg) {
	case "":
		if isRSA {
			return jose.RS256, nil
		}
		return jose.ES256, nil
	case jose.RS256, jose.PS256:
		if !isRSA {
			return "", fmt.Errorf("signing_alg %s needs an RSA key, the key is EC", alg)
		}
	case jose.ES256:
		if isRSA {
			return "", fmt.Errorf("signing_alg ES256 needs an EC P-256 key, the key is RSA")
		}
	default:
		return "", fmt.Errorf("signing_alg must be one of %s, not %q", strings.Join(SigningAlgs, ", "), Sanitize(alg, 20))
	}
	return jose.SignatureAlgorithm(alg), nil
}
