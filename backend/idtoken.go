package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// idTokenAlgs are the signature algorithms an ID token may use; "none" and
// the symmetric HS* (keyed with the client secret, which the IdP shares)
// are not among them.
var idTokenAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// idTokenSkew is the clock difference an ID token's exp and iat may have.
const idTokenSkew = time.Minute

// IDTokenCheck is what an ID token must be (OpenID Connect Core 3.1.3.7).
type IDTokenCheck struct {
	Issuer   string // iss, exactly
	ClientID string // among aud
	Nonce    string // when set, the nonce claim, exactly
	Keys     *IdPKeySet
	Now      time.Time
}

// IDTokenError is why an ID token was refused; its message holds no token.
type IDTokenError struct{ Reason string }

func (e *IDTokenError) Error() string { return "the ID token was refused: " + e.Reason }

// VerifyIDToken checks raw's signature against the issuer's keys, its iss,
// aud, exp and nonce, and returns its claims.
func VerifyIDToken(ctx context.Context, raw string, c IDTokenCheck) (map[string]any, error) {
	fail := func(format string, args ...any) (map[string]any, error) {
		return nil, &IDTokenError{Reason: fmt.Sprintf(format, args...)}
	}
	if raw == "" {
		return fail("the IdP sent no ID token (ask for the openid scope)")
	}
	jws, err := jose.ParseSigned(raw, idTokenAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return fail("it is not a JWS signed with an asymmetric algorithm")
	}
	keys, err := c.Keys.Key(ctx, jws.Signatures[0].Header.KeyID)
	if err != nil {
		return nil, err
	}
	var payload []byte
	for _, k := range keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if payload, err = jws.Verify(k.Key); err == nil {
			break
		}
	}
	if payload == nil {
		return fail("its signature matches no key of the issuer's JWK Set")
	}
	var claims map[string]any
	if json.Unmarshal(payload, &claims) != nil {
		return fail("its claims are not a JSON object")
	}
	if iss, _ := claims["iss"].(string); iss != c.Issuer {
		return fail("iss %q is not the config's issuer", Sanitize(iss, 120))
	}
	if !audienceHas(claims["aud"], c.ClientID) {
		return fail("aud does not name the client")
	}
	exp, ok := claims["exp"].(float64)
	if !ok {
		return fail("it has no exp")
	}
	if !c.Now.Before(time.Unix(int64(exp), 0).Add(idTokenSkew)) {
		return fail("it expired at %s", time.Unix(int64(exp), 0).UTC().Format(time.RFC3339))
	}
	if c.Nonce != "" {
		if n, _ := claims["nonce"].(string); n != c.Nonce {
			return fail("its nonce is not the one of the login Vault began")
		}
	}
	return claims, nil
}

// audienceHas: aud is the client, or a list that holds it.
func audienceHas(aud any, clientID string) bool {
	switch a := aud.(type) {
	case string:
		return a == clientID
	case []any:
		return slices.ContainsFunc(a, func(v any) bool { s, _ := v.(string); return s == clientID })
	}
	return false
}

// IsIDTokenError says whether err is a refused ID token.
func IsIDTokenError(err error) bool {
	var e *IDTokenError
	return errors.As(err, &e)
}
