package idptokens

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// exchangeForRole performs the token exchange (RFC 8693) of a role whose
// subject token is another role's current token (subject_role), with
// actor_role's current token as actor_token when set.
func (b *idpBackend) exchangeForRole(ctx context.Context, req *logical.Request, name string, role *roleEntry, cfg *configState, began uint64) (*backend.Token, error) {
	if role.SubjectRole == "" {
		return nil, &grantUserError{fmt.Sprintf("role %q exchanges a subject token that the caller brings: use 'vault write %sexchange/%s subject_token=...'",
			name, mountPrefix(req.MountPoint), name)}
	}
	subject, err := b.otherRoleToken(ctx, req, name, "subject_role", role.SubjectRole, began)
	if err != nil {
		return nil, err
	}
	x := backend.Exchange8693{SubjectToken: subject, SubjectTokenType: role.SubjectTokenType}
	if role.ActorRole != "" {
		if x.ActorToken, err = b.otherRoleToken(ctx, req, name, "actor_role", role.ActorRole, began); err != nil {
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
func (b *idpBackend) otherRoleToken(ctx context.Context, req *logical.Request, name, field, other string, began uint64) (string, error) {
	for attempt := 1; ; attempt++ {
		orole, ocfg, err := b.referencedRole(ctx, req.Storage, name, field, other)
		if err != nil {
			return "", err
		}
		// As creds/<other> would (the caller's own token of a per_entity
		// role): a single-active config's rules hold here too.
		h, err := b.holderFor(ctx, req, other, orole)
		if err != nil {
			return "", err
		}
		key := tokenKeyOf(other, orole, ocfg, h)
		w, err := b.want(ctx, req, other, orole, ocfg, h, key, 0, began)
		if err != nil {
			return "", err
		}
		tok, err := b.tokens.Serve(ctx, storageKV{req.Storage}, w)
		if b.retryDropped(ctx, err, attempt, other, key, ocfg) {
			began = b.tokens.Epoch()
			continue
		}
		if err != nil {
			return "", err
		}
		return tok.AccessToken, nil
	}
}

// holderFor is holderOf, with the roles an exchange role takes its tokens
// from looked up: an exchange of a per_entity role's token is the
// caller's own too.
func (b *idpBackend) holderFor(ctx context.Context, req *logical.Request, name string, role *roleEntry) (holder, error) {
	refs := false
	for _, ref := range []string{role.SubjectRole, role.ActorRole} {
		if ref == "" {
			continue
		}
		other, err := b.role(ctx, req.Storage, ref)
		if err != nil {
			return holder{}, err
		}
		refs = refs || (other != nil && other.PerEntity)
	}
	return b.holderOf(req, name, role, refs)
}

// referencedRole loads the role that role name's field (subject_role,
// actor_role) names; one that is gone or itself an exchange is a user error.
func (b *idpBackend) referencedRole(ctx context.Context, s logical.Storage, name, field, other string) (*roleEntry, *configState, error) {
	orole, ocfg, resp, err := b.roleAndConfig(ctx, s, other)
	if err != nil {
		return nil, nil, err
	}
	if resp != nil {
		return nil, nil, &grantUserError{fmt.Sprintf("role %q: %s %q: %v", name, field, other, resp.Data["error"])}
	}
	if orole.grant() == backend.GrantTokenExchange {
		return nil, nil, &grantUserError{fmt.Sprintf("role %q: %s %q is itself a token_exchange role; exchanges do not chain", name, field, other)}
	}
	return orole, ocfg, nil
}

// requestFingerprint identifies what a token of the role answers: the
// role's own request, and for an exchange of other roles' tokens theirs
// too, so that a new client, operator or scope of a subject or actor role
// is never served an exchange of its former token.
func (b *idpBackend) requestFingerprint(ctx context.Context, s logical.Storage, name string, role *roleEntry, cfg *configState) (string, error) {
	fp := cachedFingerprint(name, role, cfg)
	if role.grant() != backend.GrantTokenExchange || (role.SubjectRole == "" && role.ActorRole == "") {
		return fp, nil
	}
	h := sha256.New()
	h.Write([]byte(fp))
	for _, ref := range []struct{ field, role string }{{"subject_role", role.SubjectRole}, {"actor_role", role.ActorRole}} {
		h.Write([]byte{0})
		if ref.role == "" {
			continue
		}
		orole, ocfg, err := b.referencedRole(ctx, s, name, ref.field, ref.role)
		if err != nil {
			return "", err
		}
		h.Write([]byte(cachedFingerprint(ref.role, orole, ocfg)))
	}
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}
