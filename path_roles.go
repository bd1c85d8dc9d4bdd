package idptokens

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func (b *idpBackend) pathRoles() []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "roles/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "roles"},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: listUnder(rolePrefix), Summary: "List roles.", Responses: listResponses("roles")},
			},
			HelpSynopsis: "List roles.",
		},
		{
			Pattern:        "roles/" + framework.GenericNameRegex("name"),
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "role"},
			Fields:         roleFields(),
			ExistenceCheck: b.roleExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{Callback: strict(b.pathRoleWrite), Summary: "Create a role.", Responses: noContent()},
				logical.UpdateOperation: &framework.PathOperation{Callback: strict(b.pathRoleWrite), Summary: "Update a role.", Responses: noContent()},
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathRoleRead, Summary: "Read a role.", Responses: roleReadResponses()},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathRoleDelete, Summary: "Delete a role and its cached token.", Responses: noContent()},
			},
			HelpSynopsis:    "Name what may be asked of one IdP connection.",
			HelpDescription: strings.TrimSpace(roleHelp),
		},
	}
}

func (b *idpBackend) roleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	r, err := loadRoleEntry(ctx, req.Storage, d.Get("name").(string))
	return r != nil, err
}

func (b *idpBackend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	r, err := loadRoleEntry(ctx, req.Storage, d.Get("name").(string))
	if err != nil || r == nil {
		return nil, err
	}
	return &logical.Response{Data: roleReadData(r)}, nil
}

func (b *idpBackend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	b.writeLock.Lock()
	defer b.writeLock.Unlock()

	old, err := loadRoleEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	r := &roleEntry{}
	if old != nil {
		*r = *old
	}
	if resp := applyRoleFields(r, d); resp != nil {
		return resp, nil
	}
	if r.Config == "" {
		return fieldError("config", "required"), nil
	}
	cfg, err := b.config(ctx, req.Storage, r.Config)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return fieldError("config", "no config named %q (write %sconfig/%s first)", r.Config, mountPrefix(req.MountPoint), r.Config), nil
	}
	if r.GrantType == "" {
		r.GrantType = string(cfg.provider.DefaultGrant)
	}
	if resp := validateRole(r, cfg); resp != nil {
		return resp, nil
	}
	if resp, err := b.validateRoleReferences(ctx, req.Storage, name, r); resp != nil || err != nil {
		return resp, err
	}
	resp, err := b.checkSharedToken(ctx, req.Storage, name, r, cfg)
	if err != nil || resp != nil {
		return resp, err
	}
	if err := b.storeRole(ctx, req.Storage, name, r); err != nil {
		return nil, err
	}
	return b.afterRoleChange(ctx, req.Storage, name, old, r, cfg)
}

// afterRoleChange drops a role's own token that no longer answers what the
// role asks. A single-active config's shared token is not dropped (other
// roles may hold it), but when it no longer fits, the answer says that the
// next read mints a new one, killing the current one under its leases: a
// role written anew (as after a delete) included, when the config still
// holds a token asked for otherwise.
func (b *idpBackend) afterRoleChange(ctx context.Context, s logical.Storage, name string, old, r *roleEntry, cfg *configState) (*logical.Response, error) {
	if cfg.singleActive {
		return b.warnIfSharedTokenChanges(ctx, s, name, old, r, cfg)
	}
	if old == nil {
		return nil, nil
	}
	oldCfg, err := b.config(ctx, s, old.Config)
	if err != nil {
		return nil, err
	}
	if oldCfg != nil && fingerprint(old, oldCfg) == fingerprint(r, cfg) && !old.holdersChanged(r) {
		return nil, nil
	}
	return nil, b.dropRoleTokens(ctx, s, name)
}

// warnIfSharedTokenChanges warns when role name of a single-active config
// now asks for something else than it did, or than the config's current
// shared token answers.
func (b *idpBackend) warnIfSharedTokenChanges(ctx context.Context, s logical.Storage, name string, old, r *roleEntry, cfg *configState) (*logical.Response, error) {
	fp := fingerprint(r, cfg)
	changed := false
	if old != nil {
		oldCfg, err := b.config(ctx, s, old.Config)
		if err != nil {
			return nil, err
		}
		changed = oldCfg == nil || fingerprint(old, oldCfg) != fp
	} else {
		// A new role (or one written again after a delete, which left the
		// shared token to the config): what does the held token answer?
		cur, err := b.tokens.Peek(ctx, storageKV{s}, configTokenKey(cfg.name).String())
		if err != nil {
			return nil, err
		}
		changed = cur != nil && !cur.Unusable && cur.Fingerprint != fp && cur.Expiry.After(b.now())
	}
	if !changed {
		return nil, nil
	}
	return sharedTokenWarning(fmt.Sprintf("role %q now asks for something else than config %q's shared token answers", name, r.Config)), nil
}

func (b *idpBackend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	// A shared (one-live-token) token stays for the config's other roles,
	// unless it is a person's login and no other role holds it: a role
	// written again under the name must log in again.
	revoke, err := b.roleTokenToRevoke(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	shared, sharedRevoke, err := b.sharedLoginLeftAlone(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	revoke = append(revoke, sharedRevoke...)
	// Logins first: if a later step fails, no pending login is left to
	// complete into a role written again under this name.
	if err := b.dropLogins(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	if err := b.dropRoleTokens(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	if shared != nil {
		if err := b.tokens.Drop(ctx, storageKV{req.Storage}, shared.String()); err != nil {
			return nil, err
		}
	}
	if err := req.Storage.Delete(ctx, rolePrefix+name); err != nil {
		return nil, err
	}
	b.roles.Drop(name)
	// Again: a read that loaded the role after the first drop and before
	// its delete may have stored a token for it meanwhile.
	if err := b.dropRoleTokens(ctx, req.Storage, name); err != nil {
		return nil, fmt.Errorf("role %q was deleted, but dropping its token failed (delete the role again): %w", name, err)
	}
	// Best effort: a failure is logged and does not undo the delete.
	b.revokeDropped(ctx, revoke)
	resp := &logical.Response{}
	if shared != nil {
		resp.AddWarning(fmt.Sprintf("role %q was the last role of a single_active_token config, whose token came from a person's login: it was dropped "+
			"(and revoked at the IdP where it can be) so that a role written again logs in anew, also under leases handed out before this delete", name))
	}
	dependents, err := b.rolesNaming(ctx, req.Storage, name)
	if err != nil {
		// The delete is done; only the warning is lost.
		b.Logger().Warn("role deleted; listing the roles that exchange from it failed", "role", name, "error", err)
	}
	if len(dependents) > 0 {
		resp.AddWarning(fmt.Sprintf("roles %s name role %q as subject_role or actor_role: their next exchange fails until a role of that name is written again",
			strings.Join(dependents, ", "), name))
	}
	if len(resp.Warnings) == 0 {
		return nil, nil
	}
	return resp, nil
}

// rolesNaming are the roles whose token exchange takes role's token (as
// subject_role or actor_role), sorted.
func (b *idpBackend) rolesNaming(ctx context.Context, s logical.Storage, role string) ([]string, error) {
	roles, err := b.rolesWhere(ctx, s, func(r *roleEntry) bool { return r.SubjectRole == role || r.ActorRole == role })
	return slices.Sorted(maps.Keys(roles)), err
}

const roleHelp = `
A role names what may be asked of one config: the grant, the scopes and any
extra form parameters, and bounds the leases of creds/<role>. Vault policies
on creds/<role> decide who may read it.

min_ttl: a cached token is handed out only while it has at least this long
left; otherwise a new one is fetched. A creds read may pass its own min_ttl.

grant_type=jwt_bearer (RFC 7523 2.1) signs an assertion with the config's
private_key: iss jwt_issuer (default client_id), sub jwt_subject, aud
jwt_audience (default the token endpoint), exp 5 minutes, a fresh jti, and
the claims of jwt_claims. Fields of one grant are refused on roles of another.
`

// roleReadResponses: roles/<name> read.
func roleReadResponses() map[int][]framework.Response {
	return ok200("The role.", roleReadSchema())
}
