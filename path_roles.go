package idptokens

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

func (b *idpBackend) pathRoles() []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "roles/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "idp", OperationSuffix: "roles"},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: listUnder(rolePrefix), Summary: "List roles."},
			},
			HelpSynopsis: "List roles.",
		},
		{
			Pattern:      "roles/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "idp", OperationSuffix: "role"},
			Fields: withRoleGrantFields(map[string]*framework.FieldSchema{
				"name":         {Type: framework.TypeString, Description: "Name of the role."},
				"config":       {Type: framework.TypeString, Description: "Config (IdP connection) the role uses. Required."},
				"grant_type":   {Type: framework.TypeString, Description: "client_credentials, password, authorization_code, jwt_bearer, token_exchange or device_code. Default from the config's preset."},
				"scopes":       {Type: framework.TypeCommaStringSlice, Description: "Scopes to ask for (MWI: the api_id). Default the config's."},
				"extra_params": {Type: framework.TypeKVPairs, Description: "Extra form fields for the token request, such as audience or resource."},
				"ttl":          {Type: framework.TypeDurationSecond, Description: "Cap on the lease of a creds read. Default: the token's remaining life."},
				"max_ttl":      {Type: framework.TypeDurationSecond, Description: "Cap on the lease and its max TTL. Default: the mount's max."},
				"min_ttl":      {Type: framework.TypeDurationSecond, Description: "A cached token is handed out only while it has at least this long left (capped at half its lifetime)."},
			}),
			ExistenceCheck: b.roleExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathRoleWrite, Summary: "Create a role."},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathRoleWrite, Summary: "Update a role."},
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathRoleRead, Summary: "Read a role."},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathRoleDelete, Summary: "Delete a role and its cached token."},
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
	extra := r.ExtraParams
	if extra == nil {
		extra = map[string]string{}
	}
	data := map[string]any{
		"config":       r.Config,
		"grant_type":   r.GrantType,
		"scopes":       nonNil(r.Scopes),
		"extra_params": extra,
		"ttl":          int64(r.TTL.Seconds()),
		"max_ttl":      int64(r.MaxTTL.Seconds()),
		"min_ttl":      int64(r.MinTTL.Seconds()),
	}
	addRoleGrantData(data, r)
	return &logical.Response{Data: data}, nil
}

func (b *idpBackend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(d); resp != nil {
		return resp, nil
	}
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
	if resp := applyRoleGrantFields(r, d); resp != nil {
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
		return fieldError("config", "no config named %q (write idp/config/%s first)", r.Config, r.Config), nil
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
	if old != nil && !cfg.provider.SingleActiveToken {
		oldCfg, err := b.config(ctx, req.Storage, old.Config)
		if err != nil {
			return nil, err
		}
		if oldCfg == nil || fingerprint(old, oldCfg) != fingerprint(r, cfg) {
			if err := b.tokens.Drop(ctx, storageKV{req.Storage}, tokenKey(name, r, cfg)); err != nil {
				return nil, err
			}
		}
	}
	return nil, nil
}

func applyRoleFields(r *roleEntry, d *framework.FieldData) *logical.Response {
	for field, dst := range map[string]*string{"config": &r.Config, "grant_type": &r.GrantType} {
		v, ok, resp := getString(d, field)
		if resp != nil {
			return resp
		}
		if ok {
			*dst = strings.TrimSpace(v)
		}
	}
	if v, ok, resp := getStrings(d, "scopes"); resp != nil {
		return resp
	} else if ok {
		r.Scopes = v
	}
	if v, ok, err := d.GetOkErr("extra_params"); err != nil {
		return fieldError("extra_params", "%v", err)
	} else if ok {
		r.ExtraParams = v.(map[string]string)
		if len(r.ExtraParams) == 0 {
			r.ExtraParams = nil
		}
	}
	for field, dst := range map[string]*time.Duration{"ttl": &r.TTL, "max_ttl": &r.MaxTTL, "min_ttl": &r.MinTTL} {
		v, ok, resp := getDuration(d, field)
		if resp != nil {
			return resp
		}
		if ok {
			*dst = v
		}
	}
	return nil
}

func validateRole(r *roleEntry, cfg *configState) *logical.Response {
	grant, ok := backend.ParseGrant(r.GrantType)
	if !ok {
		return fieldError("grant_type", "must be one of %s, not %q", roleGrantNames(), backend.Sanitize(r.GrantType, 40))
	}
	if !cfg.provider.Supports(grant) {
		return fieldError("grant_type", "provider %s of config %q does not support %s", cfg.provider.Name, r.Config, grant)
	}
	if grant == backend.GrantPassword {
		if _, err := cfg.provider.ComposeUsername(cfg.entry.operator()); err != nil {
			return fieldError("grant_type", "password grant: config %q: %v", r.Config, err)
		}
	}
	if resp := checkScopes("scopes", r.Scopes); resp != nil {
		return resp
	}
	for k, v := range r.ExtraParams {
		if k == "" {
			return fieldError("extra_params", "a parameter name is empty")
		}
		if slices.Contains(backend.ReservedParams, k) {
			return fieldError("extra_params", "%q is set by the engine and cannot be overridden", k)
		}
		if len(k)+len(v) > 4096 {
			return fieldError("extra_params", "parameter %q is too long", k)
		}
	}
	if r.MaxTTL > 0 && r.TTL > r.MaxTTL {
		return fieldError("ttl", "must not exceed max_ttl")
	}
	return validateRoleGrant(r, cfg)
}

// checkSharedToken: roles of a one-live-token config share one token, so they
// must ask for the same thing, or each read would invalidate the other's.
func (b *idpBackend) checkSharedToken(ctx context.Context, s logical.Storage, name string, r *roleEntry, cfg *configState) (*logical.Response, error) {
	if !cfg.provider.SingleActiveToken {
		return nil, nil
	}
	others, err := b.rolesOf(ctx, s, r.Config)
	if err != nil {
		return nil, err
	}
	mine := fingerprint(r, cfg)
	for other, o := range others {
		if other != name && fingerprint(o, cfg) != mine {
			return logical.ErrorResponse("provider %s keeps one live token per client, so every role of config %q must ask for the same grant, scopes and extra_params; role %q asks differently",
				cfg.provider.Name, r.Config, other), nil
		}
	}
	return nil, nil
}

func (b *idpBackend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	// A shared (one-live-token) token stays for the config's other roles.
	revoke, err := b.roleTokenToRevoke(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if err := b.tokens.Drop(ctx, storageKV{req.Storage}, "role/"+name); err != nil {
		return nil, err
	}
	if err := req.Storage.Delete(ctx, rolePrefix+name); err != nil {
		return nil, err
	}
	b.roles.Drop(name)
	// Best effort: a failure is logged and does not undo the delete.
	b.revokeDropped(ctx, revoke)
	return nil, nil
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
