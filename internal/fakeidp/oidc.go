package fakeidp

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// OpenID Connect logins of a Server with Options.OIDC: ID tokens signed
// RS256 with a key of the server's own, published at /jwks (and in the
// discovery metadata as jwks_uri), naming the person who logged in (sub)
// and carrying the nonce of the authorization request.

// oidcKeyID is the kid of the server's signing key.
const oidcKeyID = "fakeidp-rs256"

// SetIssuer sets the iss of the ID tokens (the server's URL, once known).
func (s *Server) SetIssuer(iss string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issuer = iss
}

// sharedKey is one RSA key for every server of a test binary: making a
// 2048-bit key costs far more than the tests that sign with it.
var sharedKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// signingKeyLocked is the server's RSA key.
func (s *Server) signingKeyLocked() *rsa.PrivateKey {
	if s.rsaKey == nil {
		s.rsaKey = sharedKey()
	}
	return s.rsaKey
}

// oidcIDToken is an RS256 ID token for subject, with nonce when set.
func (s *Server) oidcIDTokenLocked(clientID, subject, nonce string, ttl time.Duration) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: s.signingKeyLocked()},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", oidcKeyID))
	if err != nil {
		panic(err)
	}
	now := s.now()
	claims := map[string]any{"iss": s.issuer, "aud": clientID, "sub": subject, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		panic(err)
	}
	return raw
}

// handleJWKS publishes the public half of the signing key.
func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	pub := s.signingKeyLocked().Public()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: oidcKeyID, Algorithm: string(jose.RS256), Use: "sig"}}})
}
