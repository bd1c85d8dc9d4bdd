package idptokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// minLease is the shortest lease handed out: Vault turns a TTL of 0 into the
// mount's default (768 h), which would tell Agent the token lives a month.
const minLease = backend.MinHold

func (b *idpBackend) pathCreds() []*framework.Path {
	return []*framework.Path{{
		Pattern:      "creds/" + framework.GenericNameRegex("role"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "credentials"},
		Fields: map[string]*framework.FieldSchema{
			"role":    {Type: framework.TypeString, Description: "Name of the role."},
			"min_ttl": {Type: framework.TypeDurationSecond, Query: true, Description: "Hand out the cached token only if it has at least this long left."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: strict(b.pathCredsRead), Summary: "Get an access token for the role (cached while fresh).", Responses: credsResponses()},
		},
		HelpSynopsis:    "Get a short-lived access token for a role.",
		HelpDescription: strings.TrimSpace(credsHelp),
	}}
}

func (b *idpBackend) pathCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("role").(string)
	var minTTL time.Duration
	r := fieldReader{d: d}
	if r.duration("min_ttl", &minTTL); r.err != nil {
		return r.err, nil
	}
	got, resp, err := b.serveToken(ctx, req, name, minTTL, readCreds)
	if resp != nil || err != nil {
		return resp, err
	}
	resp = b.credsResponse(name, got)
	resp.Warnings = got.warnings
	return resp, nil
}

// served is a token handed out to a read of role, and whether the role's
// config keeps one live token per client.
type served struct {
	backend.Served
	role         *roleEntry
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
		key := tokenKeyOf(name, role, cfg)
		w, err := b.want(ctx, req, name, role, cfg, key, readerMinTTL, began)
		if err != nil {
			resp, err := b.credsError(name, err)
			return served{}, resp, err
		}
		got, err := b.tokens.Serve(ctx, storageKV{req.Storage}, w)
		b.countCacheRead(role.Config, path, got.Fresh, err)
		if b.retryDropped(ctx, err, attempt, name, key, cfg) {
			continue
		}
		if err != nil {
			resp, err := b.credsError(name, err)
			return served{}, resp, err
		}
		out := served{Served: got, role: role, singleActive: cfg.singleActive}
		if readerMinTTL > 0 && got.Hold+backend.HoldSkew < readerMinTTL { // the store's own measure: the holding period plus its skew
			out.warnings = append(out.warnings, shortOfMinTTL(got, readerMinTTL))
		}
		return out, nil, nil
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
func (b *idpBackend) want(ctx context.Context, req *logical.Request, name string, role *roleEntry, cfg *configState, key tokenKey, readerMinTTL time.Duration, began uint64) (backend.Want, error) {
	fp, err := b.requestFingerprint(ctx, req.Storage, name, role, cfg)
	if err != nil {
		return backend.Want{}, err
	}
	w := backend.Want{
		Key:          key.String(),
		Fingerprint:  fp,
		MinRemaining: max(role.MinTTL, readerMinTTL, backend.HoldSkew+minLease),
		SingleActive: cfg.singleActive,
		CanMint:      b.canMint,
		Began:        began,
		Fetch: func(ctx context.Context, current *backend.StoredToken) (*backend.Token, error) {
			return b.fetchToken(ctx, req, name, role, cfg, current, began)
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

// fetchToken obtains a new token: by refresh when the stale one has a
// refresh token, by the role's grant otherwise or when refresh is refused.
func (b *idpBackend) fetchToken(ctx context.Context, vreq *logical.Request, name string, role *roleEntry, cfg *configState, current *backend.StoredToken, began uint64) (*backend.Token, error) {
	if role.grant() == backend.GrantTokenExchange {
		// Exchanged again rather than refreshed: the subject may have changed.
		return b.exchangeForRole(ctx, vreq, name, role, cfg, began)
	}
	scopes := role.scopes(cfg)
	refreshRefused := false
	if current != nil && current.RefreshToken != "" {
		tok, err := cfg.endpoint.RequestToken(ctx, backend.TokenRequest{
			Grant: backend.GrantRefreshToken, RefreshToken: current.RefreshToken, Scopes: scopes, Extra: role.ExtraParams,
		})
		if err == nil {
			if tok.RefreshToken == "" {
				// RFC 6749 6: the server may keep the refresh token.
				tok.RefreshToken = current.RefreshToken
			}
			b.metrics.Refresh(role.Config)
			b.Logger().Debug("token refreshed", "role", name, "config", role.Config)
			return withScope(tok, scopes), nil
		}
		if !backend.IsRefusal(err) {
			return nil, err
		}
		refreshRefused = true
		b.metrics.RefreshFallback(role.Config)
		b.Logger().Info("refresh refused, falling back to the role's grant", "role", name, "config", role.Config, "error", err)
	}
	tok, err := b.requestGrant(ctx, vreq, name, role, cfg, scopes)
	if err != nil && refreshRefused {
		// The refused refresh token is never sent again.
		return nil, backend.RefreshDead(err)
	}
	return tok, err
}

// requestGrant performs the role's own grant.
func (b *idpBackend) requestGrant(ctx context.Context, vreq *logical.Request, name string, role *roleEntry, cfg *configState, scopes []string) (*backend.Token, error) {
	req := backend.TokenRequest{Grant: role.grant(), Scopes: scopes, Extra: role.ExtraParams}
	switch role.grant() {
	case backend.GrantPassword:
		username, err := cfg.provider.ComposeUsername(cfg.entry.operator())
		if err != nil {
			return nil, err
		}
		req.Username, req.Password = username, cfg.entry.Password
		req.Redact = []string{cfg.entry.SecurityKey}
	case backend.GrantAuthorizationCode:
		return nil, &needsLoginError{mount: vreq.MountPoint, role: name}
	case backend.GrantJWTBearer:
		if err := jwtBearerRequest(&req, role, cfg); err != nil {
			return nil, err
		}
	case backend.GrantDeviceCode:
		return nil, b.deviceLoginNeeded(ctx, vreq, name)
	}
	tok, err := cfg.endpoint.RequestToken(ctx, req)
	if err != nil {
		return nil, err
	}
	b.Logger().Debug("token obtained", "role", name, "config", role.Config, "grant", role.GrantType)
	if missing := scopesNotGranted(tok.Scope, scopes); len(missing) > 0 {
		// Some servers (oidc-provider among them) drop scopes they will not
		// grant instead of refusing: say so where the operator looks.
		b.Logger().Warn("the IdP granted fewer scopes than the role asks", "role", name, "config", role.Config,
			"not_granted", strings.Join(missing, " "), "granted", tok.Scope)
	}
	return withScope(tok, scopes), nil
}

// scopesNotGranted are the asked scopes missing from a granted scope
// string; none when the IdP named no scope (RFC 6749 5.1: what was asked).
func scopesNotGranted(granted string, asked []string) []string {
	if granted == "" {
		return nil
	}
	have := strings.Fields(granted)
	var missing []string
	for _, s := range asked {
		if !slices.Contains(have, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

// withScope fills the granted scope: RFC 6749 5.1 lets the server omit it
// when it granted what was asked.
func withScope(t *backend.Token, asked []string) *backend.Token {
	if t.Scope == "" {
		t.Scope = strings.Join(asked, " ")
	}
	return t
}

// grantUserError is a refusal the user can act on (a 400), such as a role
// that takes its subject token from the caller being read through creds.
type grantUserError struct{ msg string }

func (e *grantUserError) Error() string { return e.msg }

// needsLoginError: an authorization_code role without a usable token can
// only be fixed by a person logging in.
type needsLoginError struct{ mount, role string }

func (e *needsLoginError) Error() string {
	return fmt.Sprintf("role %q needs a login: it holds no token that is still valid or can be refreshed; get a login URL with 'vault write -f %sauth-url/%s' and open it in a browser", e.role, mountPrefix(e.mount), e.role)
}

func (b *idpBackend) credsError(name string, err error) (*logical.Response, error) {
	var idpErr *backend.IdPError
	var login *needsLoginError
	var grantUser *grantUserError
	var held *backend.HeldError
	switch {
	case errors.Is(err, logical.ErrReadOnly):
		return nil, err
	case errors.As(err, &held):
		return logical.ErrorResponse("role %q: its config keeps one live token per client (single_active_token), and the current token is held under leases until %s: "+
			"a new one would kill it; read again after that", name, held.Until.UTC().Format(time.RFC3339)), nil
	case errors.As(err, &idpErr):
		b.Logger().Warn("token request failed", "role", name, "error", idpErr.Error())
		return logical.ErrorResponse("role %q: %s", name, idpErr.Error()), nil
	case errors.As(err, &login):
		return logical.ErrorResponse("%s", login.Error()), nil
	case errors.As(err, &grantUser):
		return logical.ErrorResponse("%s", grantUser.Error()), nil
	}
	return nil, err
}

// credsResponse is the leased secret: its TTL is how long the token may be
// relied on (its remaining life less the skew; for a single-active config,
// until the next token may be minted), capped by the role and the mount.
// It is renewable only for a role with renewable_leases on a config that
// is not single-active, and then never past that same time (MaxTTL).
func (b *idpBackend) credsResponse(name string, got served) *logical.Response {
	ttl := b.capLease(got.role, got.Hold)
	tok := got.StoredToken
	data := map[string]any{
		"access_token": tok.AccessToken,
		"token_type":   tok.TokenType,
		"expires_at":   tok.Expiry.UTC().Format(time.RFC3339),
		"scope":        tok.Scope,
		"expires_from": string(tok.ExpiresFrom),
	}
	if tok.IDToken != "" {
		data["id_token"] = tok.IDToken
	}
	if tok.IssuedTokenType != "" {
		data["issued_token_type"] = tok.IssuedTokenType
	}
	// Vault stores the lease's data and internal data with every lease:
	// keep the internal part to what revocation and renewal read.
	internal := map[string]any{"role": name}
	renewable := got.role.RenewableLeases && !got.singleActive
	if renewable {
		internal["token"] = tokenTag(tok.AccessToken)
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

const credsHelp = `
Returns an access token for the role, with a lease that lasts as long as the
token has left. Reads reuse the cached token while it has at least min_ttl
left, so most reads make no request to the IdP; concurrent reads of an expired
role make one. Never returns the refresh token or any client secret.

The lease is not renewable (an access token cannot be extended): read again
for a new one. A role with renewable_leases=true (not on a single_active_token
config) makes leases renewable, so that Vault Proxy and Agent's API proxy
cache them; a renewal never extends the token nor the lease past the time the
token may be relied on, and grants nothing once the role has another token. Revoking a lease does not revoke the token, which other leases
may share.
`
