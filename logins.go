package idptokens

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// The people of a per_entity role: who holds a token or a pending login,
// forgetting one person's, and the sweep that keeps their tokens bounded in
// storage (a token without a refresh token once it expires, one with a
// refresh token after login_idle_ttl without a read).

// entityLogin is what the operator sees of one person of a role.
type entityLogin struct {
	token   *backend.StoredToken // nil while only a login is pending
	pending string               // "authorization_code", "device_code" or ""
}

// loginsOf is every entity of role holding a token or a pending login.
func (b *idpBackend) loginsOf(ctx context.Context, s logical.Storage, role string) (map[string]*entityLogin, error) {
	out := map[string]*entityLogin{}
	get := func(id string) *entityLogin {
		if out[id] == nil {
			out[id] = &entityLogin{}
		}
		return out[id]
	}
	prefix := familyPrefix(familyEntity, role)
	keys, err := backend.StoredKeys(ctx, storageKV{s}, prefix)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		tok, err := b.tokens.Peek(ctx, storageKV{s}, k)
		if err != nil {
			return nil, err
		}
		if tok != nil {
			get(strings.TrimPrefix(k, prefix)).token = tok
		}
	}
	ids, err := s.List(ctx, pendingPrefix+role+"/")
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		// An index outlives its logins until the next one is begun.
		if live, err := b.pendingLogins(ctx, s, pendingIndex(role, id)); err != nil {
			return nil, err
		} else if len(live) > 0 {
			get(id).pending = string(backend.GrantAuthorizationCode)
		}
	}
	if ids, err = s.List(ctx, deviceLoginPrefix+role+"/"); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if l, err := loadDeviceLogin(ctx, s, deviceSlot(role, id)); err != nil {
			return nil, err
		} else if l != nil && l.Ended == "" && b.now().Before(l.ExpiresAt) {
			get(id).pending = string(backend.GrantDeviceCode)
		}
	}
	return out, nil
}

// loginKeyInfo is a LIST answer's key_info of one person.
func (b *idpBackend) loginKeyInfo(id string, l *entityLogin) map[string]any {
	info := map[string]any{"pending_login": l.pending}
	if e, err := b.entity(id); err == nil {
		info["entity_name"] = e.Name
	}
	if l.token != nil {
		info["expires_at"] = l.token.Expiry.UTC().Format(time.RFC3339)
		info["refresh_token"] = l.token.RefreshToken != ""
		info["last_read"] = l.token.ReadAt().UTC().Format(time.RFC3339)
	}
	return info
}

// forgetLogin revokes and forgets one person's token of role (and their
// pending logins); it answers whether they held one.
func (b *idpBackend) forgetLogin(ctx context.Context, s logical.Storage, name string, role *roleEntry, cfg *configState, id string) (bool, []string, error) {
	key := tokenKey{name: name, family: familyEntity, member: id}
	list, err := b.peekTokens(ctx, s, cfg, key)
	if err != nil {
		return false, nil, err
	}
	if err := b.dropPersonLogins(ctx, s, name, id); err != nil {
		return false, nil, err
	}
	if err := b.tokens.Drop(ctx, storageKV{s}, key.String()); err != nil {
		return false, nil, err
	}
	return len(list) > 0, b.revokeDropped(ctx, list), nil
}

// dropPersonLogins forgets one person's pending logins of role.
func (b *idpBackend) dropPersonLogins(ctx context.Context, s logical.Storage, role, id string) error {
	b.stateLock.Lock()
	index := pendingIndex(role, id)
	list, err := b.pendingLogins(ctx, s, index)
	if err == nil {
		for _, p := range list {
			if err = s.Delete(ctx, p.Key); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = s.Delete(ctx, index)
	}
	b.stateLock.Unlock()
	if err != nil {
		return err
	}
	slot := deviceSlot(role, id)
	b.devices.stopSlot(slot)
	b.devices.writeMu.Lock()
	defer b.devices.writeMu.Unlock()
	return s.Delete(ctx, deviceLoginPrefix+slot)
}

// sweepEvery is how often the periodic function sweeps people's tokens:
// each sweep reads every stored token of every per_entity role.
const sweepEvery = 10 * time.Minute

// sweepEntityTokens forgets people's tokens that no read can use any more
// (expired, without a refresh token) or that nobody read for the role's
// login_idle_ttl; it asks the IdP nothing but to revoke an idle refresh
// token. Only where storage is writable, at most every sweepEvery.
func (b *idpBackend) sweepEntityTokens(ctx context.Context, s logical.Storage) error {
	now := b.now()
	if last := b.lastSweep.Load(); b.storageReadOnly() || (last != 0 && now.Sub(time.Unix(0, last)) < sweepEvery) {
		return nil
	}
	b.lastSweep.Store(now.UnixNano())
	roles, err := b.rolesWhere(ctx, s, func(r *roleEntry) bool { return r.PerEntity })
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(roles)) {
		role := roles[name]
		cfg, err := b.config(ctx, s, role.Config)
		if err != nil || cfg == nil {
			continue
		}
		keys, err := backend.StoredKeys(ctx, storageKV{s}, familyPrefix(familyEntity, name))
		if err != nil {
			return err
		}
		var idle []toRevoke
		for _, k := range keys {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			tok, err := b.tokens.Peek(ctx, storageKV{s}, k)
			if err != nil || tok == nil {
				continue
			}
			expired := !tok.Expiry.After(now)
			switch {
			case tok.RefreshToken == "" && expired:
			case tok.RefreshToken != "" && now.Sub(tok.ReadAt()) > role.loginIdle():
				idle = append(idle, toRevoke{key: tokenKey{name: name, family: familyEntity, member: strings.TrimPrefix(k, familyPrefix(familyEntity, name))}, cfg: cfg, tok: tok})
			default:
				continue
			}
			if err := b.tokens.Drop(ctx, storageKV{s}, k); err != nil {
				return err
			}
		}
		if len(idle) > 0 {
			b.Logger().Info("forgot people's idle tokens", "role", name, "count", len(idle))
			b.revokeDropped(ctx, idle)
		}
	}
	return nil
}
