// RFC 7009 revocation of tokens the engine drops (drop, role or config
// delete); a failure is logged and never blocks the drop.

package idptokens

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// toRevoke is a dropped token to revoke at its config's IdP.
type toRevoke struct {
	key tokenKey
	cfg *configState
	tok *backend.StoredToken
}

// roleTokenToRevoke is the role's own cached tokens (not a token shared by
// the config's roles): its one token and its people's and subjects', before
// they are dropped.
func (b *idpBackend) roleTokenToRevoke(ctx context.Context, s logical.Storage, name string) ([]toRevoke, error) {
	role, err := b.role(ctx, s, name)
	if err != nil || role == nil {
		return nil, err
	}
	cfg, err := b.config(ctx, s, role.Config)
	if err != nil || cfg == nil {
		return nil, err
	}
	keys, err := b.storedKeysOfRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	return b.peekTokens(ctx, s, cfg, keys...)
}

// sharedLoginLeftAlone is the key of role name's single-active config's
// shared token, and that token to revoke, when the token comes from a
// person's login (a login grant) and the role is the config's last: it is
// dropped with the role. nil when the shared token stays.
func (b *idpBackend) sharedLoginLeftAlone(ctx context.Context, s logical.Storage, name string) (*tokenKey, []toRevoke, error) {
	role, err := b.role(ctx, s, name)
	if err != nil || role == nil || (role.grant() != backend.GrantAuthorizationCode && role.grant() != backend.GrantDeviceCode) {
		return nil, nil, err
	}
	cfg, err := b.config(ctx, s, role.Config)
	if err != nil || cfg == nil || !cfg.singleActive {
		return nil, nil, err
	}
	others, err := b.rolesOf(ctx, s, role.Config)
	if err != nil {
		return nil, nil, err
	}
	delete(others, name)
	if len(others) > 0 {
		return nil, nil, nil
	}
	key := configTokenKey(role.Config)
	revoke, err := b.peekTokens(ctx, s, cfg, key)
	return &key, revoke, err
}

// storedKeysOfRole are the keys of the role's one token and of every token
// its families hold in storage.
func (b *idpBackend) storedKeysOfRole(ctx context.Context, s logical.Storage, name string) ([]tokenKey, error) {
	keys := []tokenKey{roleTokenKey(name)}
	for _, family := range []string{familyEntity, familySubject} {
		stored, err := backend.StoredKeys(ctx, storageKV{s}, familyPrefix(family, name))
		if err != nil {
			return nil, err
		}
		for _, k := range stored {
			keys = append(keys, tokenKey{name: name, family: family, member: strings.TrimPrefix(k, familyPrefix(family, name))})
		}
	}
	return keys, nil
}

// tokensOfConfigToRevoke is every cached token of a config whose roles are
// roles, before they are dropped (the tokens dropTokensOfRoles drops).
func (b *idpBackend) tokensOfConfigToRevoke(ctx context.Context, s logical.Storage, config string, roles map[string]*roleEntry) ([]toRevoke, error) {
	cfg, err := b.config(ctx, s, config)
	if err != nil || cfg == nil {
		return nil, err
	}
	keys := []tokenKey{configTokenKey(config)}
	for _, name := range slices.Sorted(maps.Keys(roles)) {
		more, err := b.storedKeysOfRole(ctx, s, name)
		if err != nil {
			return nil, err
		}
		keys = append(keys, more...)
	}
	return b.peekTokens(ctx, s, cfg, keys...)
}

func (b *idpBackend) peekTokens(ctx context.Context, s logical.Storage, cfg *configState, keys ...tokenKey) ([]toRevoke, error) {
	var out []toRevoke
	for _, k := range keys {
		tok, err := b.tokens.Peek(ctx, storageKV{s}, k.String())
		if err != nil {
			return nil, err
		}
		if tok != nil {
			out = append(out, toRevoke{key: k, cfg: cfg, tok: tok})
		}
	}
	return out, nil
}

// revokeDropped revokes dropped tokens at their IdP (RFC 7009): the refresh
// token first (revoking it may revoke its access tokens too), then the
// access token, which not every server can revoke. Failures are logged and
// returned as warnings; they never undo the drop. Nothing is done without a
// revocation endpoint (explicit, or from discovery).
func (b *idpBackend) revokeDropped(ctx context.Context, list []toRevoke) (warnings []string) {
	if len(list) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revokeTimeout)
	defer cancel()
	for _, r := range list {
		for _, t := range []struct{ token, hint string }{
			{r.tok.RefreshToken, backend.HintRefreshToken}, {r.tok.AccessToken, backend.HintAccessToken},
		} {
			if t.token == "" {
				continue
			}
			err := r.cfg.endpoint.Revoke(ctx, t.token, t.hint)
			switch {
			case errors.Is(err, backend.ErrNoRevocationEndpoint):
				b.Logger().Debug("dropped token not revoked: the config has no revocation endpoint", "config", r.cfg.name, "token_key", r.key.String())
				return append(warnings, "the token was not revoked at the IdP: config "+r.cfg.name+" has no revocation_url (nor an issuer whose metadata names one)")
			case err != nil:
				b.Logger().Warn("revocation of a dropped token failed", "config", r.cfg.name, "token_key", r.key.String(), "token_type_hint", t.hint, "error", err)
				warnings = append(warnings, "revoking the "+t.hint+" failed: "+err.Error())
			default:
				b.Logger().Debug("dropped token revoked", "config", r.cfg.name, "token_key", r.key.String(), "token_type_hint", t.hint)
			}
		}
	}
	return warnings
}
