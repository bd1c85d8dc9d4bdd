// RFC 7009 revocation of tokens the engine drops (drop, role or config
// delete); a failure is logged and never blocks the drop.

package idptokens

import (
	"context"
	"errors"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// toRevoke is a dropped token to revoke at its config's IdP.
type toRevoke struct {
	key tokenKey
	cfg *configState
	tok *backend.StoredToken
}

// roleTokenToRevoke is the role's own cached token (not a token shared by
// the config's roles), before it is dropped.
func (b *idpBackend) roleTokenToRevoke(ctx context.Context, s logical.Storage, name string) ([]toRevoke, error) {
	role, err := b.role(ctx, s, name)
	if err != nil || role == nil {
		return nil, err
	}
	cfg, err := b.config(ctx, s, role.Config)
	if err != nil || cfg == nil {
		return nil, err
	}
	return b.peekTokens(ctx, s, cfg, roleTokenKey(name))
}

// tokensOfConfigToRevoke is every cached token of a config whose roles are
// roles, before they are dropped (the keys dropTokenKeys drops).
func (b *idpBackend) tokensOfConfigToRevoke(ctx context.Context, s logical.Storage, config string, roles map[string]*roleEntry) ([]toRevoke, error) {
	cfg, err := b.config(ctx, s, config)
	if err != nil || cfg == nil {
		return nil, err
	}
	return b.peekTokens(ctx, s, cfg, tokenKeysOfConfig(config, roles)...)
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
