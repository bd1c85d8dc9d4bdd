package idptokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// fetchToken obtains a new token: by refresh when the stale one has a
// refresh token, by the role's grant otherwise or when refresh is refused.
func (b *idpBackend) fetchToken(ctx context.Context, vreq *logical.Request, name string, role *roleEntry, cfg *configState, h holder, current *backend.StoredToken, began uint64) (*backend.Token, error) {
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
	tok, err := b.requestGrant(ctx, vreq, name, role, cfg, h, scopes)
	if err != nil && refreshRefused {
		// The refused refresh token is never sent again.
		return nil, backend.RefreshDead(err)
	}
	return tok, err
}

// requestGrant performs the role's own grant.
func (b *idpBackend) requestGrant(ctx context.Context, vreq *logical.Request, name string, role *roleEntry, cfg *configState, h holder, scopes []string) (*backend.Token, error) {
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
		return nil, &needsLoginError{mount: vreq.MountPoint, role: name, own: h.perEntity}
	case backend.GrantJWTBearer:
		if err := jwtBearerRequest(&req, role, cfg, h.assertion); err != nil {
			return nil, err
		}
	case backend.GrantDeviceCode:
		return nil, b.deviceLoginNeeded(ctx, vreq, name, h)
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
type needsLoginError struct {
	mount, role string
	own         bool // per_entity: the caller's own login
}

func (e *needsLoginError) Error() string {
	whose := "it holds"
	if e.own {
		whose = "it gives each entity its own token, and holds for yours"
	}
	return fmt.Sprintf("role %q needs a login: %s no token that is still valid or can be refreshed; get a login URL with 'vault write -f %sauth-url/%s' and open it in a browser",
		e.role, whose, mountPrefix(e.mount), e.role)
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
