package idptokens

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// minLease is the shortest lease handed out: Vault turns a TTL of 0 into the
// mount's default (768 h), which would tell Agent the token lives a month.
const minLease = backend.MinHold

// credsResponse is the leased secret: its TTL is how long the token may be
// relied on (its remaining life less the skew; for a single-active config,
// until the next token may be minted), capped by the role and the mount.
// It is renewable only for a role with renewable_leases on a config that
// is not single-active, and then never past that same time (MaxTTL).
func (b *idpBackend) credsResponse(name string, got served) *logical.Response {
	ttl := b.capLease(got.role, got.Hold)
	tok := got.StoredToken
	data := answerData(answerOf(got.Served), true)
	// Vault stores the lease's data and internal data with every lease:
	// keep the internal part to what revocation and renewal read.
	internal := map[string]any{"role": name}
	renewable := got.role.renewable(got.singleActive)
	if renewable {
		// Which token the lease holds, and where it is kept (for a person's
		// own token, the entity's key: set from the request, never by it).
		internal["token"], internal["key"] = tokenTag(tok.AccessToken), got.key.String()
	}
	resp := b.Secret(secretAccessTokenType).Response(data, internal)
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = ttl
	resp.Secret.Renewable = renewable
	return resp
}

// capLease is a holding period capped by the role's ttl and max_ttl and
// the mount's max lease TTL, in whole seconds, never below minLease.
func (b *idpBackend) capLease(role *roleEntry, hold time.Duration) time.Duration {
	ttl := hold
	for _, limit := range []time.Duration{role.TTL, role.MaxTTL, b.mountMaxTTL()} {
		if limit > 0 && ttl > limit {
			ttl = limit
		}
	}
	return max(ttl.Truncate(time.Second), minLease)
}

// mountLimitTTL is how long the mount's max lease TTL is reused before Vault
// is asked again.
const mountLimitTTL = time.Second

// hotPath holds what the cache-hit read would otherwise ask Vault for.
type hotPath struct {
	maxTTL atomic.Pointer[mountLimit]
}

type mountLimit struct {
	maxTTL time.Duration
	until  time.Time
}

// mountMaxTTL is b.System().MaxLeaseTTL(), asked at most once a second. In
// an external plugin every System() call is a gRPC round trip to Vault,
// which made a cache-hit read cost a fifth more than a constant leased read
// (docs/benchmarks.md). Staleness is harmless: Vault itself caps every
// lease at the mount's max TTL when it registers it, so for a second after
// `vault secrets tune -max-lease-ttl` a lease is at worst capped by Vault
// (with a warning) or a little shorter than it could be.
func (b *idpBackend) mountMaxTTL() time.Duration {
	now := time.Now()
	if l := b.hot.maxTTL.Load(); l != nil && now.Before(l.until) {
		return l.maxTTL
	}
	v := b.System().MaxLeaseTTL()
	b.hot.maxTTL.Store(&mountLimit{maxTTL: v, until: now.Add(mountLimitTTL)})
	return v
}

// forgetMountLimits makes the next read ask Vault again (tests that change
// the system view).
func (b *idpBackend) forgetMountLimits() { b.hot.maxTTL.Store(nil) }
