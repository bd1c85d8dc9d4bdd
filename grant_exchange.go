package idptokens

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// exchangeForRole performs the token exchange (RFC 8693) of a role whose
// subject token is another role's current token (subject_role), with
// actor_role's current token as actor_token when set.
func (b *idpBackend) exchangeForRole(ctx context.Context, req *logical.Request, name string, role *roleEntry, cfg *configState) (*backend.Token, error) {
	if role.SubjectRole == "" {
		return nil, &grantUserError{fmt.Sprintf("role %q exchanges a subject token that the caller brings: use 'vault write %sexchange/%s subject_token=...'",
			name, req.MountPoint, name)}
	}
	subject, err := b.otherRoleToken(ctx, req, name, "subject_role", role.SubjectRole)
	if err != nil {
		return nil, err
	}
	x := backend.Exchange8693{SubjectToken: subject, SubjectTokenType: role.SubjectTokenType}
	if role.ActorRole != "" {
		if x.ActorToken, err = b.otherRoleToken(ctx, req, name, "actor_role", role.ActorRole); err != nil {
			return nil, err
		}
	}
	return b.exchange(ctx, name, role, cfg, x)
}

// exchange sends one token exchange request for the role.
func (b *idpBackend) exchange(ctx context.Context, name string, role *roleEntry, cfg *configState, x backend.Exchange8693) (*backend.Token, error) {
	scopes := role.scopes(cfg)
	x.RequestedTokenType, x.Audience, x.Resource = role.RequestedTokenType, role.Audience, role.Resource
	treq := backend.TokenRequest{Grant: backend.GrantTokenExchange, Scopes: scopes, Extra: role.ExtraParams}
	x.Apply(&treq)
	tok, err := cfg.endpoint.RequestToken(ctx, treq)
	if err != nil {
		return nil, err
	}
	b.Logger().Debug("token exchanged", "role", name, "config", role.Config)
	return withScope(tok, scopes), nil
}

// otherRoleToken is the current access token of role other (cached,
// fetched or refreshed as creds/<other> would), for role name's field.
func (b *idpBackend) otherRoleToken(ctx context.Context, req *logical.Request, name, field, other string) (string, error) {
	orole, ocfg, resp, err := b.roleAndConfig(ctx, req.Storage, other)
	if err != nil {
		return "", err
	}
	if resp != nil {
		return "", &grantUserError{fmt.Sprintf("role %q: %s %q: %v", name, field, other, resp.Data["error"])}
	}
	if orole.grant() == backend.GrantTokenExchange {
		return "", &grantUserError{fmt.Sprintf("role %q: %s %q is itself a token_exchange role; exchanges do not chain", name, field, other)}
	}
	// As creds/<other> would: a single-active config's rules hold here too.
	tok, err := b.tokens.Serve(ctx, storageKV{req.Storage}, b.want(req, other, orole, ocfg, tokenKeyOf(other, orole, ocfg), 0))
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}
