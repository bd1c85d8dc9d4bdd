// idp/logins/<role>: the operator's view of a per_entity role's people.

package idptokens

import (
	"context"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func (b *idpBackend) pathLogins() []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "logins/" + framework.GenericNameRegex("role") + "/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "logins"},
			Fields: map[string]*framework.FieldSchema{
				"role": {Type: framework.TypeString, Description: "Name of a per_entity role."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: strict(b.pathLoginsList), Summary: "List the entities holding a token or a pending login of the role.",
					Responses: loginsListResponses()},
			},
			HelpSynopsis:    "List the people of a per_entity role.",
			HelpDescription: strings.TrimSpace(loginsHelp),
		},
		{
			Pattern:      "logins/" + framework.GenericNameRegex("role") + "/" + framework.GenericNameRegex("entity_id"),
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "login"},
			Fields: map[string]*framework.FieldSchema{
				"role":      {Type: framework.TypeString, Description: "Name of a per_entity role."},
				"entity_id": {Type: framework.TypeString, Description: "The entity whose token and pending logins to forget."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.DeleteOperation: &framework.PathOperation{Callback: strict(b.pathLoginDelete), Summary: "Revoke and forget one person's token of the role, and their pending logins.",
					Responses: noContent()},
			},
			HelpSynopsis:    "Forget one person's token of a per_entity role.",
			HelpDescription: strings.TrimSpace(loginsHelp),
		},
	}
}

func (b *idpBackend) perEntityRole(ctx context.Context, req *logical.Request, name string) (*roleEntry, *configState, *logical.Response, error) {
	role, cfg, resp, err := b.roleAndConfig(ctx, req.Storage, name)
	if resp != nil || err != nil {
		return nil, nil, resp, err
	}
	if !role.PerEntity {
		return nil, nil, logical.ErrorResponse("role %q is not per_entity: it holds one token, which %screds/%s/drop forgets", name, mountPrefix(req.MountPoint), name), nil
	}
	return role, cfg, nil, nil
}

func (b *idpBackend) pathLoginsList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("role").(string)
	if _, _, resp, err := b.perEntityRole(ctx, req, name); resp != nil || err != nil {
		return resp, err
	}
	logins, err := b.loginsOf(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(logins))
	info := map[string]any{}
	for id, l := range logins {
		ids = append(ids, id)
		info[id] = b.loginKeyInfo(id, l)
	}
	return logical.ListResponseWithInfo(ids, info), nil
}

func (b *idpBackend) pathLoginDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, id := d.Get("role").(string), d.Get("entity_id").(string)
	role, cfg, resp, err := b.perEntityRole(ctx, req, name)
	if resp != nil || err != nil {
		return resp, err
	}
	if err := b.canMint(); err != nil {
		return nil, err
	}
	held, warnings, err := b.forgetLogin(ctx, req.Storage, name, role, cfg, id)
	if err != nil {
		return nil, err
	}
	b.Logger().Info("a person's token was forgotten", "role", name, "entity_id", id, "had_token", held)
	if len(warnings) == 0 {
		return nil, nil
	}
	return &logical.Response{Warnings: warnings}, nil
}

// loginsListResponses: LIST logins/<role>.
func loginsListResponses() map[int][]framework.Response {
	return ok200("The entities of the role.", map[string]*framework.FieldSchema{
		"keys": {Type: framework.TypeStringSlice, Description: "Entity IDs holding a token or a pending login.", Required: true},
		"key_info": {Type: framework.TypeMap, Required: true, Description: "Per entity: entity_name, pending_login (authorization_code, device_code or empty), " +
			"and when a token is held expires_at, refresh_token (whether one is held) and last_read (to within an hour)."},
	})
}

const loginsHelp = `
The people of a per_entity role. LIST <mount>/logins/<role> names the entities
(by entity ID) that hold a token of the role or have a login pending, with
key_info: entity_name, pending_login, and for a token expires_at,
refresh_token (whether one is held) and last_read. DELETE
<mount>/logins/<role>/<entity_id> revokes that person's token at the IdP
(RFC 7009, where the config has a revocation endpoint), forgets it and their
pending logins; they log in again to get a new one.
`
