package idptokens

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func (b *idpBackend) pathCreds() []*framework.Path {
	return []*framework.Path{{
		Pattern:      "creds/" + framework.GenericNameRegex("role"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "credentials"},
		Fields: map[string]*framework.FieldSchema{
			"role":    {Type: framework.TypeString, Description: "Name of the role."},
			"min_ttl": {Type: framework.TypeDurationSecond, Query: true, Description: "Hand out the cached token only if it has at least this long left."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: strict(b.pathCredsRead), Summary: "Get an access token for the role (cached while fresh).", Responses: credsResponses()},
		},
		HelpSynopsis:    "Get a short-lived access token for a role.",
		HelpDescription: strings.TrimSpace(credsHelp),
	}}
}

func (b *idpBackend) pathCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("role").(string)
	var minTTL time.Duration
	r := fieldReader{d: d}
	if r.duration("min_ttl", &minTTL); r.err != nil {
		return r.err, nil
	}
	got, resp, err := b.serveToken(ctx, req, name, minTTL, readCreds)
	if resp != nil || err != nil {
		return resp, err
	}
	resp = b.credsResponse(name, got)
	resp.Warnings = got.warnings
	return resp, nil
}

const credsHelp = `
Returns an access token for the role, with a lease that lasts as long as the
token has left. Reads reuse the cached token while it has at least min_ttl
left, so most reads make no request to the IdP; concurrent reads of an expired
role make one. Never returns the refresh token or any client secret.

The lease is not renewable (an access token cannot be extended): read again
for a new one. A role with renewable_leases=true (not on a single_active_token
config) makes leases renewable, so that Vault Proxy and Agent's API proxy
cache them; a renewal never extends the token nor the lease past the time the
token may be relied on, and grants nothing once the role has another token. Revoking a lease does not revoke the token, which other leases
may share.
`

// credsResponses: creds/<role> read, the leased secret's data.
func credsResponses() map[int][]framework.Response {
	return ok200("An access token, leased for as long as it has left.", answerSchema(true))
}
