package backend

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"
	"time"
)

// OAuth 2.0 Token Exchange (RFC 8693): a subject token (and optionally an
// actor token) is exchanged for a token for another audience or resource.
const (
	GrantTokenExchange GrantType = "token_exchange"
	// TokenExchangeGrantURN is its grant_type on the wire.
	TokenExchangeGrantURN = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeAccessToken is RFC 8693 3's access token type, the default
	// subject_token_type and actor_token_type.
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

func init() { grantURNs[GrantTokenExchange] = TokenExchangeGrantURN }

// Exchange8693 is one token exchange request's parameters (RFC 8693 2.1).
type Exchange8693 struct {
	SubjectToken       string
	SubjectTokenType   string // default TokenTypeAccessToken
	ActorToken         string // optional
	ActorTokenType     string // default TokenTypeAccessToken when ActorToken is set
	RequestedTokenType string
	Audience           []string
	Resource           []string
}

// Apply puts the exchange into req: its form fields, and the subject and
// actor tokens among the values never quoted back from an IdP's error.
func (x Exchange8693) Apply(req *TokenRequest) {
	p := url.Values{}
	p.Set("subject_token", x.SubjectToken)
	p.Set("subject_token_type", orDefault(x.SubjectTokenType, TokenTypeAccessToken))
	if x.ActorToken != "" {
		p.Set("actor_token", x.ActorToken)
		p.Set("actor_token_type", orDefault(x.ActorTokenType, TokenTypeAccessToken))
	}
	if x.RequestedTokenType != "" {
		p.Set("requested_token_type", x.RequestedTokenType)
	}
	for _, a := range x.Audience {
		p.Add("audience", a)
	}
	for _, r := range x.Resource {
		p.Add("resource", r)
	}
	req.Params = p
	req.Redact = append(req.Redact[:len(req.Redact):len(req.Redact)], x.SubjectToken, x.ActorToken)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// TokenTypeNA is RFC 8693 2.2.1's token_type of an issued token that is not
// an access token (an ID token or a SAML assertion asked for by
// requested_token_type).
const TokenTypeNA = "N_A"

// exchangeTokenTypes is what a token exchange accepts: the config's types
// (default Bearer) and N_A, the one token_type RFC 8693 allows for a token
// that is not an access token.
func exchangeTokenTypes(allowed []string) []string {
	if len(allowed) == 0 {
		allowed = []string{"Bearer"}
	}
	for _, a := range allowed {
		if strings.EqualFold(a, TokenTypeNA) {
			return allowed
		}
	}
	return append(allowed[:len(allowed):len(allowed)], TokenTypeNA)
}

// SubjectDigest names a subject token without holding it: a SHA-256 of its
// type and value, so that an exchange of it is found again only by a
// caller who brings the very same token.
func SubjectDigest(subjectTokenType, subjectToken string) string {
	sum := sha256.Sum256([]byte(subjectTokenType + "\x00" + subjectToken))
	return hex.EncodeToString(sum[:])
}

// SubjectExpiry is the exp claim of a subject token that is a JWT, read
// without verifying it (the IdP verifies the token; this only bounds how
// long an exchange of it is reused). ok is false for any other token.
func SubjectExpiry(subjectToken string) (exp time.Time, ok bool) {
	exp, isJWT, err := jwtExpiry(subjectToken)
	return exp, isJWT && err == nil
}
