package idptokens

import (
	"strings"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// jwtBearerRequest fills a jwt_bearer token request (RFC 7523 2.1): the
// assertion is signed with the config's private_key (or the generated key
// signing at the time) for each HTTP try. A
// preset that wants the scopes in the assertion (Google) gets them as its
// space-separated scope claim instead of the scope form field.
func jwtBearerRequest(req *backend.TokenRequest, role *roleEntry, cfg *configState, resolved *resolvedAssertion) error {
	if cfg.endpoint.Signer == nil && cfg.endpoint.Keys == nil {
		return &backend.IdPError{Config: role.Config, Detail: "the jwt_bearer grant needs the config's private_key or generate_key"}
	}
	c := backend.BearerClaims{
		Issuer:   role.JWTIssuer,
		Subject:  role.JWTSubject,
		Audience: role.JWTAudience,
		Extra:    role.JWTClaims,
	}
	if resolved != nil { // the caller's own subject (a template)
		c.Subject, c.Extra = resolved.subject, resolved.claims
	}
	if c.Issuer == "" {
		c.Issuer = cfg.entry.ClientID
	}
	if cfg.provider.ScopesInAssertion && len(req.Scopes) > 0 {
		extra := make(map[string]any, len(c.Extra)+1)
		for k, v := range c.Extra {
			extra[k] = v
		}
		extra["scope"] = strings.Join(req.Scopes, " ")
		c.Extra = extra
		req.Scopes = nil
	}
	req.Assertion = cfg.endpoint.GrantAssertion(c)
	return nil
}
