package idptokens

// Hot-path helpers of the cache-hit creds read (see docs/benchmarks.md).

import (
	"sync/atomic"
	"time"
)

// fingerprintMemo is a role's fingerprint under one config state.
type fingerprintMemo struct {
	role *roleEntry
	fp   string
}

// cachedFingerprint is fingerprint(role, cfg), computed once per (role,
// config) version instead of on every read: the JSON encoding and SHA-256
// were an eighth of a cache-hit read's CPU. Roles and config states are
// immutable once cached (a write stores a new pointer), so the memo, kept on
// the config state and keyed by role name, is valid while it names the same
// role pointer. A config write makes a new config state and so a new memo;
// a deleted role's entry stays until then (one small entry per name).
func cachedFingerprint(name string, role *roleEntry, cfg *configState) string {
	if v, ok := cfg.fingerprints.Load(name); ok {
		if m := v.(fingerprintMemo); m.role == role {
			return m.fp
		}
	}
	fp := fingerprint(role, cfg)
	cfg.fingerprints.Store(name, fingerprintMemo{role: role, fp: fp})
	return fp
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
