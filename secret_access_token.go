package idptokens

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Renewable leases (a role's renewable_leases): Vault Proxy and Agent's
// API proxy cache a leased read only when the lease is renewable, and then
// serve every identical read from the cache until the lease ends. A renewal
// never extends the token (an access token cannot be extended) nor the
// lease past how long the token may be relied on: it grants at most what is
// left of that, and nothing when the token is no longer the role's current
// one. So Vault, Agent and Proxy can keep one lease for the token's life.

// tokenTag is a short hash of an access token, kept in a lease's internal
// data to tell whether the lease's token is still the role's current one.
// Never the token itself: Vault stores internal data with every lease.
func tokenTag(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return hex.EncodeToString(sum[:8])
}

// renewAccessToken grants a renewable lease what is left of its token's
// holding period, capped as creds caps a new lease; it never moves the
// lease's end past that, whatever increment the caller asks.
func (b *idpBackend) renewAccessToken(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	name, _ := req.Secret.InternalData["role"].(string)
	tag, _ := req.Secret.InternalData["token"].(string)
	role, cfg, resp, err := b.roleAndConfig(ctx, req.Storage, name)
	if resp != nil || err != nil {
		return resp, err
	}
	if !role.renewable(cfg.singleActive) {
		return logical.ErrorResponse("leases of role %q are not renewable: read %screds/%s again before the lease ends", name, mountPrefix(req.MountPoint), name), nil
	}
	key := tokenKeyOf(name, role, cfg, holder{})
	held := key.String()
	if k, ok := req.Secret.InternalData["key"].(string); ok && k != "" {
		held = k // the key the lease was handed out from
	}
	cur, err := b.tokens.Peek(ctx, storageKV{req.Storage}, held)
	if err != nil {
		return nil, err
	}
	w, err := b.want(ctx, req, name, role, cfg, holder{}, key, 0, 0)
	if err != nil {
		return b.credsError(name, err)
	}
	now := b.clock()
	hold, ok := b.tokens.HoldOf(cur, w, now)
	if !ok || tag == "" || tokenTag(cur.AccessToken) != tag {
		return logical.ErrorResponse("the token of this lease is no longer role %q's current token, or has no time left: read %screds/%s again", name, mountPrefix(req.MountPoint), name), nil
	}
	ttl := b.capLease(role, hold)
	// Vault bounds a renewal by IssueTime+MaxTTL (framework.CalculateTTL,
	// whole seconds), and a caller's increment overrides the TTL: the
	// bound is what keeps the lease within the holding period.
	maxTTL := now.Truncate(time.Second).Sub(req.Secret.IssueTime.Truncate(time.Second)) + ttl
	if orig := req.Secret.MaxTTL; orig > 0 && orig < maxTTL {
		maxTTL = orig
	}
	out := &logical.Response{Secret: req.Secret}
	out.Secret.TTL = ttl
	out.Secret.MaxTTL = maxTTL
	out.Secret.Renewable = true
	return out, nil
}

const secretAccessTokenType = "idp_access_token"

func (b *idpBackend) secretAccessToken() *framework.Secret {
	return &framework.Secret{
		Type:   secretAccessTokenType,
		Fields: answerSchema(true),
		// Renew never extends the token, only a renewable lease up to what
		// is left of the token's holding period (renewAccessToken above).
		Renew:  b.renewAccessToken,
		Revoke: b.revokeAccessToken,
	}
}

// revokeAccessToken ends the lease only. The token is shared by every lease
// handed out while it was fresh, so revoking it at the IdP (or dropping it
// from the cache) here would break holders of other leases.
func (b *idpBackend) revokeAccessToken(_ context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.Logger().Debug("lease revoked; the shared token stays cached", "role", req.Secret.InternalData["role"])
	return nil, nil
}
