package fakeidp

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/url"
)

// pkceValueOK checks the RFC 7636 4.1 shape shared by verifiers and S256
// challenges: 43 to 128 characters from the unreserved set.
func pkceValueOK(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for _, c := range []byte(v) {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// S256Challenge is the RFC 7636 S256 code_challenge for verifier.
func S256Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// checkVerifier: a code issued with a challenge needs the matching verifier;
// a verifier for a code issued without one is refused (OAuth 2.1 4.1.3), so
// a plugin cannot believe it used PKCE when it did not.
func checkVerifier(challenge string, form url.Values) *oauthError {
	v, sent := form["code_verifier"]
	if challenge == "" {
		if sent {
			return invalidGrant("code_verifier sent but the authorization request had no code_challenge")
		}
		return nil
	}
	if !sent || v[0] == "" {
		return invalidGrant("code_verifier is required")
	}
	if !pkceValueOK(v[0]) {
		return invalidGrant("malformed code_verifier")
	}
	got := S256Challenge(v[0])
	if subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) != 1 {
		return invalidGrant("code_verifier does not match code_challenge")
	}
	return nil
}
