package idptokens

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// leaseSkew is taken off a token's remaining life, so that a lease ends a
// little before the token does (network and clock drift), never after.
const leaseSkew = time.Second

// minLease is the shortest lease handed out: Vault turns a TTL of 0 into the
// mount's default (768 h), which would tell Agent the token lives a month.
const minLease = time.Second

func (b *idpBackend) pathCreds() []*framework.Path {
	return []*framework.Path{{
		Pattern:      "creds/" + framework.GenericNameRegex("role"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "idp", OperationSuffix: "credentials"},
		Fields: map[string]*framework.FieldSchema{
			"role":    {Type: framework.TypeString, Description: "Name of the role."},
			"min_ttl": {Type: framework.TypeDurationSecond, Description: "Hand out the cached token only if it has at least this long left."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathCredsRead, Summary: "Get an access token for the role (cached while fresh)."},
		},
		HelpSynopsis:    "Get a short-lived access token for a role.",
		HelpDescription: strings.TrimSpace(credsHelp),
	}}
}

func (b *idpBackend) pathCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("role").(string)
	minTTL, _, resp := getDuration(d, "min_ttl")
	if resp != nil {
		return resp, nil
	}
	role, cfg, resp, err := b.roleAndConfig(ctx, req.Storage, name)
	if resp != nil || err != nil {
		return resp, err
	}
	need := max(role.MinTTL, minTTL, leaseSkew+minLease)
	key := tokenKey(name, role, cfg)
	tok, fetched, err := b.tokens.Get(ctx, storageKV{req.Storage}, key, cachedFingerprint(name, role, cfg), need,
		func(ctx context.Context, current *backend.StoredToken) (*backend.Token, error) {
			return b.fetchToken(ctx, req, name, role, cfg, current)
		})
	b.countCacheRead(role.Config, fetched, err)
	if err != nil {
		return b.credsError(name, err)
	}
	return b.credsResponse(name, role, tok), nil
}

// fetchToken obtains a new token: by refresh when the stale one has a
// refresh token, by the role's grant otherwise or when refresh is refused.
func (b *idpBackend) fetchToken(ctx context.Context, vreq *logical.Request, name string, role *roleEntry, cfg *configState, current *backend.StoredToken) (*backend.Token, error) {
	if b.System().ReplicationState().HasState(consts.ReplicationPerformanceStandby) {
		// Only the active node mints, so that tokens are stored once;
		// Vault forwards the request on this error.
		return nil, logical.ErrReadOnly
	}
	if tok, handled, err := b.fetchGrantToken(ctx, vreq, name, role, cfg, current); handled {
		return tok, err
	}
	scopes := role.scopes(cfg)
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
		b.metrics.RefreshFallback(role.Config)
		b.Logger().Info("refresh refused, falling back to the role's grant", "role", name, "config", role.Config, "error", err)
	}
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
		return nil, &needsLoginError{role: name}
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
	return withScope(tok, scopes), nil
}

// withScope fills the granted scope: RFC 6749 5.1 lets the server omit it
// when it granted what was asked.
func withScope(t *backend.Token, asked []string) *backend.Token {
	if t.Scope == "" {
		t.Scope = strings.Join(asked, " ")
	}
	return t
}

// needsLoginError: an authorization_code role without a usable token can
// only be fixed by a person logging in.
type needsLoginError struct{ role string }

func (e *needsLoginError) Error() string {
	return fmt.Sprintf("role %q needs a login: it holds no token that is still valid or can be refreshed; get a login URL with 'vault write -f idp/auth-url/%s' and open it in a browser", e.role, e.role)
}

func (b *idpBackend) credsError(name string, err error) (*logical.Response, error) {
	var idpErr *backend.IdPError
	var login *needsLoginError
	var grantUser *grantUserError
	switch {
	case errors.Is(err, logical.ErrReadOnly):
		return nil, err
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

// credsResponse is the leased secret: its TTL is the token's remaining life
// less the skew, capped by the role and the mount.
func (b *idpBackend) credsResponse(name string, role *roleEntry, tok *backend.StoredToken) *logical.Response {
	ttl := tok.Remaining(b.now()) - leaseSkew
	for _, limit := range []time.Duration{role.TTL, role.MaxTTL, b.mountMaxTTL()} {
		if limit > 0 && ttl > limit {
			ttl = limit
		}
	}
	ttl = max(ttl.Truncate(time.Second), minLease)
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
	// keep the internal part to what revocation reads.
	resp := b.Secret(secretAccessTokenType).Response(data, map[string]any{"role": name})
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = ttl
	resp.Secret.Renewable = false
	return resp
}

const credsHelp = `
Returns an access token for the role, with a lease that lasts as long as the
token has left. Reads reuse the cached token while it has at least min_ttl
left, so most reads make no request to the IdP; concurrent reads of an expired
role make one. Never returns the refresh token or any client secret.

The lease is not renewable (an access token cannot be extended): read again
for a new one. Revoking a lease does not revoke the token, which other leases
may share.
`
