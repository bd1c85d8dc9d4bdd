package idptokens

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// login stores the token a login obtains (a code exchange, a device poll)
// as role name's token, through the token store's one door: in the key's
// lane, after the holding period of a single-active config's current token
// (or a HeldError), retiring that token first, and never for a role
// dropped or deleted after began (the token is then revoked). fetch makes
// the login's token request.
func (b *idpBackend) login(ctx context.Context, s logical.Storage, name string, role *roleEntry, cfg *configState, began uint64,
	fetch func(context.Context) (*backend.Token, error)) (*backend.StoredToken, error) {
	key := tokenKeyOf(name, role, cfg)
	w := backend.Want{
		Key: key.String(), Fingerprint: cachedFingerprint(name, role, cfg), SingleActive: cfg.singleActive,
		CanMint: b.canMint, Began: began, Login: true,
		Fetch: func(ctx context.Context, _ *backend.StoredToken) (*backend.Token, error) {
			tok, err := fetch(ctx)
			if err != nil {
				return nil, err
			}
			return withScope(tok, role.scopes(cfg)), nil
		},
	}
	if cfg.singleActive {
		w.Reserve = func(ctx context.Context) (time.Duration, error) { return b.sharedReserve(ctx, s, role.Config) }
	}
	got, err := b.tokens.Serve(ctx, storageKV{s}, w)
	var dropped *backend.DroppedError
	if errors.As(err, &dropped) && dropped.Token != nil {
		b.Logger().Info("role dropped or deleted while a login completed; revoking its token", "role", name, "token_key", key.String())
		b.revokeDropped(ctx, []toRevoke{{key: key, cfg: cfg, tok: dropped.Token}})
	}
	return got.StoredToken, err
}
