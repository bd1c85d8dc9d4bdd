// idp/creds/<role>/drop: forget a role's cached token (and revoke it).

package idptokens

import (
	"context"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

func (b *idpBackend) pathCredsDropPaths() []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "creds/" + framework.GenericNameRegex("role") + "/drop",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "drop", OperationSuffix: "credentials"},
			Fields: map[string]*framework.FieldSchema{
				"role": {Type: framework.TypeString, Description: "Name of the role."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{Callback: strict(b.pathCredsDrop), Summary: "Drop the role's cached token (and revoke it at the IdP) so that the next read mints a new one.", Responses: dropResponses()},
			},
			HelpSynopsis:    "Drop a role's cached token.",
			HelpDescription: strings.TrimSpace(dropHelp),
		},
	}
}

func (b *idpBackend) pathCredsDrop(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("role").(string)
	role, cfg, resp, err := b.roleAndConfig(ctx, req.Storage, name)
	if resp != nil || err != nil {
		return resp, err
	}
	h, err := b.holderFor(ctx, req, name, role)
	if err != nil {
		return b.credsError(name, err)
	}
	// A person drops their own token of a per_entity role, nobody else's.
	key := tokenKeyOf(name, role, cfg, h)
	list, err := b.peekTokens(ctx, req.Storage, cfg, key)
	if err != nil {
		return nil, err
	}
	if err := b.tokens.Drop(ctx, storageKV{req.Storage}, key.String()); err != nil {
		return nil, err
	}
	dropped := len(list) > 0
	if role.grant() == backend.GrantTokenExchange && role.SubjectRole == "" {
		// The exchanges callers brought their subject tokens to: the next
		// exchange/<role> of each subject exchanges again.
		dropped = b.tokens.DropEphemeral(familyPrefix(familyExchange, name)) > 0 || dropped
	}
	resp = &logical.Response{Data: map[string]any{"dropped": dropped, "token_key": key.String()}}
	if key.shared {
		// One live token per client: every role of the config shares it.
		roles, err := b.rolesOf(ctx, req.Storage, role.Config)
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(roles))
		for n := range roles {
			names = append(names, n)
		}
		slices.Sort(names)
		resp.Data["shared_by"] = names
		resp.AddWarning(killsSharedToken("the token is shared by every role of config "+role.Config+" ("+strings.Join(names, ", ")+"), which all get a new one", "drop"))
	}
	b.Logger().Info("cached token dropped", "role", name, "config", role.Config, "token_key", key.String(), "had_token", dropped)
	for _, w := range b.revokeDropped(ctx, list) {
		resp.AddWarning(w)
	}
	return resp, nil
}

const dropHelp = `
Drops the role's cached token so that the next creds read mints a new one
(for when the IdP revoked a token behind Vault's back). The dropped refresh
and access tokens are revoked at the config's revocation endpoint (RFC 7009)
when it has one; a failed revocation is a warning, and the token is dropped
all the same. For a token_exchange role whose callers bring the subject
token (exchange/<role>), every exchange of the role held in memory is
dropped too, so the next exchange of each subject token asks the IdP again.

When the config keeps one live token per client (provider=microtek), the
token is shared by every role of the config: dropping it affects them all.
`

// dropResponses: creds/<role>/drop.
func dropResponses() map[int][]framework.Response {
	return ok200("What was dropped.", map[string]*framework.FieldSchema{
		"dropped":   respBool("Whether a cached token was dropped."),
		"token_key": respString("The cache key of the role's token (role/<name>, or config/<name> when the config's roles share one)."),
		"shared_by": {Type: framework.TypeStringSlice, Description: "The roles sharing the dropped token (one live token per client)."},
	})
}
