package idptokens

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// login stores the token a login obtains (a code exchange, a device poll)
// as role name's token, through the token store's one door: in the key's
// lane, after the holding period of a single-active config's current token
// (or a HeldError), retiring that token first, and never for a role
// dropped or deleted after began (the token is then revoked). fetch makes
// the login's token request.
func (b *idpBackend) login(ctx context.Context, s logical.Storage, name string, role *roleEntry, cfg *configState, h holder, began uint64,
	fetch func(context.Context) (*backend.Token, error)) (*backend.StoredToken, error) {
	key := tokenKeyOf(name, role, cfg, h)
	w := backend.Want{
		Key: key.String(), Fingerprint: cachedFingerprint(name, role, cfg), SingleActive: cfg.singleActive,
		CanMint: b.canMint, Began: began, Login: true, Bounded: key.many(),
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

// served is a token handed out to a read of role, whose it is, and whether
// the role's config keeps one live token per client.
type served struct {
	backend.Served
	role         *roleEntry
	holder       holder
	key          tokenKey
	singleActive bool
	warnings     []string // for the reader, e.g. why its min_ttl was not met
}

// serveToken hands out the role's token: the cached one while it is fresh
// enough, else one fetched once however many readers ask. A token dropped
// (drop, delete) while it was being fetched is revoked, and the read made
// again against what the role is now. path says which read it is, for
// the metrics.
func (b *idpBackend) serveToken(ctx context.Context, req *logical.Request, name string, readerMinTTL time.Duration, path readPath) (served, *logical.Response, error) {
	for attempt := 1; ; attempt++ {
		// Before the role is read: a drop after this discards what the
		// read would fetch for the role as it was.
		began := b.tokens.Epoch()
		role, cfg, resp, err := b.roleAndConfig(ctx, req.Storage, name)
		if resp != nil || err != nil {
			return served{}, resp, err
		}
		if cfg.singleActive && readerMinTTL > role.MinTTL {
			return served{}, fieldError("min_ttl", "config %q keeps one live token per client (single_active_token), "+
				"so a min_ttl above the role's (%s) would mint a new token while other holders' leases of the current one still run; raise the role's min_ttl instead",
				role.Config, role.MinTTL), nil
		}
		h, err := b.holderFor(ctx, req, name, role)
		if err != nil {
			resp, err := b.credsError(name, err)
			return served{}, resp, err
		}
		key := tokenKeyOf(name, role, cfg, h)
		w, err := b.want(ctx, req, name, role, cfg, h, key, readerMinTTL, began)
		if err != nil {
			resp, err := b.credsError(name, err)
			return served{}, resp, err
		}
		got, err := b.tokens.Serve(ctx, storageKV{req.Storage}, w)
		b.countCacheRead(role.Config, path, got.Fresh, err)
		if h.perEntity {
			b.metrics.PerEntityRead(role.Config, name, err == nil && !got.Fresh)
		}
		if b.retryDropped(ctx, err, attempt, name, key, cfg) {
			continue
		}
		if err != nil {
			resp, err := b.credsError(name, err)
			return served{}, resp, err
		}
		if key.many() {
			b.touch(ctx, req.Storage, w, got.StoredToken, role)
		}
		out := served{Served: got, role: role, holder: h, key: key, singleActive: cfg.singleActive}
		if readerMinTTL > 0 && got.Hold+backend.HoldSkew < readerMinTTL { // the store's own measure: the holding period plus its skew
			out.warnings = append(out.warnings, shortOfMinTTL(got, readerMinTTL))
		}
		return out, nil, nil
	}
}

// touchEvery is how stale a token's last read may be in storage (and at
// most a tenth of the role's login_idle_ttl): a read records itself once in
// that long, so that an idle person's token can be forgotten while a
// cache-hit read stays free of writes.
const touchEvery = time.Hour

// touch records the read of a token of many (a person's) when its stored
// last read is older than touchEvery, on a node that may write; a failure
// only delays it.
func (b *idpBackend) touch(ctx context.Context, s logical.Storage, w backend.Want, tok *backend.StoredToken, role *roleEntry) {
	now := b.now()
	if now.Sub(tok.ReadAt()) < min(touchEvery, role.loginIdle()/10) || b.storageReadOnly() {
		return
	}
	if err := b.tokens.Touch(ctx, storageKV{s}, w, now); err != nil {
		b.Logger().Debug("recording a token's last read failed", "token_key", w.Key, "error", err)
	}
}

// shortOfMinTTL says why a read got less than its min_ttl: a new token is
// asked for only when the current one has less than half its lifetime
// left (else a min_ttl near the lifetime would mint on every read), and on
// a single_active_token config only once every lease of it has ended.
func shortOfMinTTL(got backend.Served, minTTL time.Duration) string {
	lifetime := got.StoredToken.Expiry.Sub(got.StoredToken.ObtainedAt).Truncate(time.Second)
	return fmt.Sprintf("the token may be relied on for %s, less than the min_ttl of %s: a new token is fetched only when the current one "+
		"has less than min_ttl or half its lifetime (%s) left, and on a single_active_token config only once every lease of it has ended",
		max(got.Hold.Truncate(time.Second), minLease), minTTL, lifetime)
}

// retryDropped: a request whose key was dropped after it began (a drop, a
// role or config delete) stored nothing; whatever it fetched is revoked,
// and the first time the caller reads again against what the role is now.
func (b *idpBackend) retryDropped(ctx context.Context, err error, attempt int, name string, key tokenKey, cfg *configState) bool {
	var dropped *backend.DroppedError
	if !errors.As(err, &dropped) || attempt > 1 {
		return false
	}
	b.Logger().Info("token dropped while it was being fetched; revoking it and reading again", "role", name, "token_key", key.String())
	if dropped.Token != nil {
		b.revokeDropped(ctx, []toRevoke{{key: key, cfg: cfg, tok: dropped.Token}})
	}
	return true
}

// want is what a read of the role asks of the token store; began is the
// store's epoch before the role was read.
func (b *idpBackend) want(ctx context.Context, req *logical.Request, name string, role *roleEntry, cfg *configState, h holder, key tokenKey, readerMinTTL time.Duration, began uint64) (backend.Want, error) {
	fp, err := b.requestFingerprint(ctx, req.Storage, name, role, cfg)
	if err != nil {
		return backend.Want{}, err
	}
	w := backend.Want{
		Key:          key.String(),
		Fingerprint:  fp,
		MinRemaining: max(role.MinTTL, readerMinTTL), // beside the store's margin
		SingleActive: cfg.singleActive,
		CanMint:      b.canMint,
		Began:        began,
		Bounded:      key.many(),
		Fetch: func(ctx context.Context, current *backend.StoredToken) (*backend.Token, error) {
			return b.fetchToken(ctx, req, name, role, cfg, h, current, began)
		},
	}
	if cfg.singleActive {
		w.Reserve = func(ctx context.Context) (time.Duration, error) {
			return b.sharedReserve(ctx, req.Storage, role.Config)
		}
	}
	return w, nil
}

// sharedReserve is the life a config's shared token keeps when the next one
// may be minted: the largest min_ttl of the config's roles. Asked only when
// a token is minted.
func (b *idpBackend) sharedReserve(ctx context.Context, s logical.Storage, config string) (time.Duration, error) {
	roles, err := b.rolesOf(ctx, s, config)
	if err != nil {
		return 0, err
	}
	var reserve time.Duration
	for _, r := range roles {
		reserve = max(reserve, r.MinTTL)
	}
	return reserve, nil
}

// canMint: only a node whose storage is writable talks to the IdP, so that a
// token is minted and stored once; Vault forwards a request that answers
// ErrReadOnly to the node that can write.
func (b *idpBackend) canMint() error {
	if b.storageReadOnly() {
		return logical.ErrReadOnly
	}
	return nil
}

// storageReadOnly: a performance standby, a DR secondary, or a performance
// secondary for a replicated (not local) mount.
func (b *idpBackend) storageReadOnly() bool {
	sys := b.System()
	state := sys.ReplicationState()
	if state.HasState(consts.ReplicationPerformanceStandby | consts.ReplicationDRSecondary) {
		return true
	}
	return state.HasState(consts.ReplicationPerformanceSecondary) && !sys.LocalMount()
}

// The reads that hand out a token, as metric labels.
type readPath = backend.ReadPath

const (
	readCreds = backend.ReadCreds
	readToken = backend.ReadToken
)

// countCacheRead counts a creds or token read as a hit (served without
// asking the IdP, from memory or, after a restart, from storage) or a miss
// (it fetched, joined a fetch, or failed to fetch).
func (b *idpBackend) countCacheRead(config string, path readPath, fetched bool, err error) {
	if err != nil || fetched {
		b.metrics.CacheMissOn(config, path)
		return
	}
	b.metrics.CacheHitOn(config, path)
}
