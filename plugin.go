// Package idptokens is the Vault side of the IdP token secrets engine: the
// Factory, the paths, leases and storage. What talks to identity providers
// lives in the backend package.
package idptokens

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// Version is what the plugin reports to Vault, which checks it against the
// -version of `vault plugin register`. Every build stamps it from the
// VERSION file with -ldflags "-X <module>.Version=..."; this default marks
// a plain `go build`.
var Version = "v0.0.0-unstamped"

// idpBackend is the secrets engine. Decoded configs, roles and tokens are
// kept in memory (storage being the durable copy) so that a cache-hit creds
// read makes no storage round trip to Vault.
type idpBackend struct {
	*framework.Backend

	configs backend.Cache[*configState]
	roles   backend.Cache[*roleEntry]
	// tokens is the one door of every token write: reads, logins, exchanges
	// of callers' subject tokens (memory only), drops.
	tokens backend.TokenStore
	// entities memoises Vault's descriptions of entities (identity.go).
	entities backend.Cache[*entityMemo]
	// lastSweep is when people's tokens were last swept (logins.go), in
	// Unix nanoseconds.
	lastSweep atomic.Int64
	// devices polls for pending device logins (grant_device_code_poller.go).
	devices devicePollers

	// writeLock serialises config and role writes, which check each other.
	writeLock sync.Mutex
	// clientIndexBuilt: the client index holds every config (config_client_index.go).
	clientIndexBuilt atomic.Bool
	// stateLock makes taking an authorization state single-use (grant_auth_code.go).
	stateLock sync.Mutex

	// settings are the mount-wide settings (settings.go).
	settings settingsState

	// metrics counts IdP requests and cache use for the metrics path.
	metrics backend.Metrics
	// hot caches what a cache-hit read would otherwise ask Vault (lease.go).
	hot hotPath

	// now is the clock of leases and token freshness, and sleep waits on
	// it (tests move a fake clock).
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// Factory creates the backend; Vault calls it once per mount.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend()
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	b.devices.storage = conf.StorageView
	return b, nil
}

func newBackend() *idpBackend {
	b := &idpBackend{now: time.Now, sleep: backend.Sleep}
	b.tokens.Now, b.tokens.Sleep = b.clock, b.sleepFor
	b.entities.SetBound(backend.DefaultBoundedTokens)
	b.devices.minInterval, b.devices.slowDown = time.Second, backend.SlowDownStep
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			// Configs hold client secrets and operator passwords, tokens
			// long-lived refresh tokens, login states PKCE verifiers and
			// device codes, and keys/ the private keys made in Vault (seal
			// wrapping takes effect on Vault Enterprise).
			SealWrapStorage: sealWrapStorage(),
			// The IdP sends the browser back to callback, the state being the
			// credential; IdPs fetch the public keys at jwks/<config>.
			Unauthenticated: []string{"callback", "jwks/*"},
		},
		Paths: framework.PathAppend(
			// creds first: the framework tries path patterns in order, and
			// creds is the hot path.
			b.pathCreds(),
			b.pathToken(),
			b.pathConfig(),
			b.pathRoles(),
			b.pathMetrics(),
			b.pathAuthCode(),
			b.pathSettings(),
			b.pathConfigRotatePaths(),
			b.pathCredsDropPaths(),
			b.pathExchange(),
			b.pathDeviceCode(),
			b.pathLogins(),
			b.pathJWKS(),
			b.pathConfigKeys(),
		),
		PeriodicFunc:   b.periodic,
		Secrets:        []*framework.Secret{b.secretAccessToken()},
		Invalidate:     b.invalidate,
		Clean:          b.clean,
		RunningVersion: Version,
	}
	return b
}

// clock reads b.now late, so that tests may move it after setup.
func (b *idpBackend) clock() time.Time { return b.now() }

// sleepFor reads b.sleep late, likewise.
func (b *idpBackend) sleepFor(ctx context.Context, d time.Duration) error { return b.sleep(ctx, d) }

// invalidate drops in-memory copies of entries another node wrote.
func (b *idpBackend) invalidate(_ context.Context, key string) {
	switch {
	case key == settingsKey:
		b.settings.stale.Store(true)
	case strings.HasPrefix(key, configPrefix):
		b.dropConfigState(strings.TrimPrefix(key, configPrefix))
	case strings.HasPrefix(key, keysPrefix):
		b.keysChanged(strings.TrimPrefix(key, keysPrefix))
	case strings.HasPrefix(key, rolePrefix):
		b.roles.Drop(strings.TrimPrefix(key, rolePrefix))
	case strings.HasPrefix(key, backend.TokenPrefix):
		b.tokens.Forget(strings.TrimPrefix(key, backend.TokenPrefix))
	}
}

// clean runs when the mount is disabled or the plugin is unloaded.
func (b *idpBackend) clean(context.Context) {
	b.configs.Each(func(_ string, st *configState) { st.endpoint.HTTP.CloseIdleConnections() })
	b.configs.Clear()
	b.roles.Clear()
	b.tokens.ForgetAll()
	b.devices.stopAll()
}

const backendHelp = `
The IdP tokens secrets engine keeps OAuth2 client secrets (and resource-owner
credentials) inside Vault and hands out short-lived access tokens instead.

Write a connection to an identity provider at config/<name>, name what may be
asked of it at roles/<name>, and read creds/<role> for an access token whose
lease lasts as long as the token does. Tokens are cached and shared until they
near expiry, so reads do not mint a token each time.
`

// periodic is the backend's PeriodicFunc: expired authorization states,
// device logins, then the rotation of keys made in Vault.
func (b *idpBackend) periodic(ctx context.Context, req *logical.Request) error {
	// Each job runs whatever another's storage error: a failed sweep must
	// not keep the next signing key from being made in time.
	return errors.Join(
		b.sweepAuthStates(ctx, req),
		b.sweepEntityTokens(ctx, req.Storage),
		b.resumeDeviceLogins(ctx, req.Storage),
		b.rotateKeys(ctx, req.Storage),
	)
}
