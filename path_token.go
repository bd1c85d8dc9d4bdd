package idptokens

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// pathToken is the unleased read of the role's cached token: the same
// cache, single flight and min_ttl rules as creds/<role> (it goes through
// serveToken), but no Vault lease, so a reader that asks often costs Vault
// no lease entry and, on raft, no storage write. Its own path, so that a
// policy can grant creds, token or both.
func (b *idpBackend) pathToken() []*framework.Path {
	return []*framework.Path{{
		Pattern:      "token/" + framework.GenericNameRegex("role"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "token"},
		Fields: map[string]*framework.FieldSchema{
			"role":    {Type: framework.TypeString, Description: "Name of the role."},
			"min_ttl": {Type: framework.TypeDurationSecond, Description: "Hand out the cached token only if it has at least this long left.", Query: true},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: strict(b.pathTokenRead), Responses: tokenResponses(), Summary: "Get the role's access token without a lease (cached while fresh)."},
		},
		HelpSynopsis:    "Get the role's access token without a Vault lease.",
		HelpDescription: strings.TrimSpace(tokenHelp),
	}}
}

func (b *idpBackend) pathTokenRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("role").(string)
	var minTTL time.Duration
	r := fieldReader{d: d}
	if r.duration("min_ttl", &minTTL); r.err != nil {
		return r.err, nil
	}
	got, resp, err := b.serveToken(ctx, req, name, minTTL, readToken)
	if resp != nil || err != nil {
		return resp, err
	}
	return &logical.Response{Data: answerData(answerOf(got.Served), false), Warnings: got.warnings}, nil
}

const tokenHelp = `
Returns the role's access token with no Vault lease: access_token,
token_type, expires_at (RFC 3339), expires_in (seconds the token may be
relied on, a number), scope, and id_token when the IdP sent one; and, as a
rotating secret, ttl (seconds until a read is handed the next token),
rotation_period (the token's lifetime) and last_vault_rotation (when it
was fetched), by which Vault Agent templates and VSO re-read it. The token
is the one creds/<role> hands out (same cache, same single fetch, same
min_ttl rules); only the lease is missing, so a reader that asks often makes
Vault register and later expire no lease (on raft storage, two writes per
read fewer). Re-read before expires_in runs out.

On a single_active_token config expires_in is the time until the next token
may be minted (which kills this one at the IdP), not the token's remaining
life: stop using the token by then and read again. A reader's min_ttl above
the role's is refused there, as on creds/<role>.

Grant it in a policy on its own: a policy may allow creds/<role>, token/<role>
or both.
`

// tokenResponses: token/<role> read, the unleased token.
func tokenResponses() map[int][]framework.Response {
	return ok200("The role's access token, without a lease.", answerSchema(false))
}
