package backend

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"net/url"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// The JWT bearer authorization grant (RFC 7523 2.1): the client presents a
// JWT it signed, naming an issuer and a subject, as the grant itself.
const (
	GrantJWTBearer GrantType = "jwt_bearer"
	// JWTBearerGrantURN is its grant_type on the wire.
	JWTBearerGrantURN = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// BearerAssertionLifetime is how long a grant assertion is valid; Google
	// accepts at most an hour, and a short life limits a leaked assertion.
	BearerAssertionLifetime = 5 * time.Minute
)

// grantURNs maps the extension grants to their grant_type values.
var grantURNs = map[GrantType]string{
	GrantJWTBearer: JWTBearerGrantURN,
}

// RegisteredClaims are the claims the engine sets in a grant assertion;
// jwt_claims must not override them.
var RegisteredClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti"}

// AssertionFunc signs a grant assertion whose default audience is tokenURL.
type AssertionFunc func(tokenURL string, now time.Time) (string, error)

// BearerClaims are what a jwt_bearer role asserts. Empty Audience means the
// token endpoint; Extra holds further claims (for example Google's scope).
type BearerClaims struct {
	Issuer   string
	Subject  string
	Audience string
	Extra    map[string]any
}

// GrantAssertion returns an AssertionFunc signing c with s: iss, sub, aud,
// iat = now, exp = now + BearerAssertionLifetime, a fresh random jti, and
// c.Extra.
func (s *AssertionSigner) GrantAssertion(c BearerClaims) AssertionFunc {
	return func(tokenURL string, now time.Time) (string, error) {
		jti := make([]byte, 18)
		if _, err := rand.Read(jti); err != nil {
			return "", err
		}
		aud := c.Audience
		if aud == "" {
			aud = tokenURL
		}
		std := jwt.Claims{
			Issuer:   c.Issuer,
			Subject:  c.Subject,
			Audience: jwt.Audience{aud},
			ID:       base64.RawURLEncoding.EncodeToString(jti),
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(BearerAssertionLifetime)),
		}
		b := jwt.Signed(s.signer).Claims(std)
		if len(c.Extra) > 0 {
			b = b.Claims(c.Extra)
		}
		out, err := b.Serialize()
		if err != nil {
			return "", fmt.Errorf("signing the jwt_bearer assertion failed: %v", err)
		}
		return out, nil
	}
}

// signAssertion adds the grant's assertion, signed for tokenURL at now, to
// form; the second result is what it sent in confidence, for redaction.
func (req TokenRequest) signAssertion(form url.Values, tokenURL string, now time.Time) (url.Values, []string, error) {
	if req.Assertion == nil {
		return form, nil, nil
	}
	a, err := req.Assertion(tokenURL, now)
	if err != nil {
		return nil, nil, err
	}
	form = maps.Clone(form)
	form.Set("assertion", a)
	return form, []string{a}, nil
}
