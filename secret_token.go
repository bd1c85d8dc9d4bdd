package idptokens

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const secretAccessTokenType = "idp_access_token"

func (b *idpBackend) secretAccessToken() *framework.Secret {
	return &framework.Secret{
		Type: secretAccessTokenType,
		Fields: map[string]*framework.FieldSchema{
			"access_token": {Type: framework.TypeString, Description: "OAuth2 access token."},
			"token_type":   {Type: framework.TypeString, Description: "Token type, normally Bearer."},
			"expires_at":   {Type: framework.TypeString, Description: "When the token expires (RFC 3339)."},
			"scope":        {Type: framework.TypeString, Description: "Scopes granted."},
			"expires_from": {Type: framework.TypeString, Description: "Where the lifetime came from: expires_in, jwt_exp (the access token's exp claim) or default_token_ttl."},
			"id_token":     {Type: framework.TypeString, Description: "OIDC ID token, when the IdP sends one."},
		},
		// Renew never extends the token, only a renewable lease up to what
		// is left of the token's holding period (secret_renew.go).
		Renew:  b.renewAccessToken,
		Revoke: b.revokeAccessToken,
	}
}

// revokeAccessToken ends the lease only. The token is shared by every lease
// handed out while it was fresh, so revoking it at the IdP (or dropping it
// from the cache) here would break holders of other leases.
func (b *idpBackend) revokeAccessToken(_ context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.Logger().Debug("lease revoked; the shared token stays cached", "role", req.Secret.InternalData["role"])
	return nil, nil
}
