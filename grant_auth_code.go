// The authorization code flow with Vault as the redirect target:
//
//	vault write idp/auth-url/<role>   -> url (open in a browser) and state
//	browser -> IdP login -> 302 to https://<vault>/v1/idp/callback?code&state
//	callback exchanges the code (client auth + PKCE verifier) and stores the
//	token as the role's cached token; creds/<role> hands it out.
//
// A state is 256 random bits. Storage keeps only its SHA-256 (so a storage
// listing does not yield usable states), bound to the role, its request
// fingerprint (which holds the config generation), the redirect_uri and the
// PKCE verifier, which never leaves Vault. A state is deleted before its code
// is exchanged, so it serves once, and expires after auth_state_ttl.

package idptokens

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

const (
	defaultAuthStateTTL = 10 * time.Minute
	minAuthStateTTL     = 30 * time.Second
	maxAuthStateTTL     = time.Hour
)

// authState is one pending login, stored under the hash of its state.
type authState struct {
	Role        string    `json:"role"`
	Config      string    `json:"config"`
	Generation  string    `json:"generation"`
	Fingerprint string    `json:"fingerprint"`
	RedirectURI string    `json:"redirect_uri"`
	Verifier    string    `json:"code_verifier"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires"`
	// Entity (per_entity roles) began the login; the token is stored for
	// it only. Nonce (bound_subject) is what the ID token must carry.
	Entity string `json:"entity,omitempty"`
	Nonce  string `json:"nonce,omitempty"`
}

func authStateKey(state string) string {
	sum := sha256.Sum256([]byte(state))
	return authStatePrefix + hex.EncodeToString(sum[:])
}

func newState() (string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

func (c *configEntry) authStateTTL() time.Duration {
	if c.AuthStateTTL > 0 {
		return c.AuthStateTTL
	}
	return defaultAuthStateTTL
}

// validateAuthCodeConfig checks redirect_uris and auth_state_ttl.
func validateAuthCodeConfig(e *configEntry) *logical.Response {
	for _, u := range e.RedirectURIs {
		// Same rules as the IdP endpoints: absolute http(s), https off
		// loopback unless allow_insecure_http, no user info, no fragment
		// (RFC 6749 3.1.2).
		if err := backend.CheckEndpointURL(u, e.AllowInsecureHTTP); err != nil {
			return fieldError("redirect_uris", "%v", err)
		}
	}
	if e.AuthStateTTL != 0 && (e.AuthStateTTL < minAuthStateTTL || e.AuthStateTTL > maxAuthStateTTL) {
		return fieldError("auth_state_ttl", "must be between %s and %s", minAuthStateTTL, maxAuthStateTTL)
	}
	return nil
}

// callbackResult is what the callback tells the browser or the CLI. Its
// message never holds a code, state, token or secret.
type callbackResult struct {
	status  int
	message string
	role    string
	tok     *backend.Token
}

func refused(format string, args ...any) *callbackResult {
	return &callbackResult{status: http.StatusBadRequest, message: fmt.Sprintf(format, args...)}
}

// completeLogin takes the state (once), checks it still fits its role and
// config, exchanges the code and stores the token. A refused state never
// reaches the IdP.
func (b *idpBackend) completeLogin(ctx context.Context, s logical.Storage, mount string, d *framework.FieldData) (*callbackResult, error) {
	// Before the role is read: a drop or delete after this stores nothing.
	began := b.tokens.Epoch()
	authURL := "vault write -f " + mountPrefix(mount) + "auth-url/"
	params := map[string]string{}
	for _, f := range []string{"state", "code", "error", "error_description"} {
		v, _, err := d.GetOkErr(f)
		s, _ := v.(string)
		if err != nil || len(s) > maxCallbackParam {
			return refused("The callback's %s parameter is malformed.", f), nil
		}
		params[f] = s
	}
	if params["state"] == "" {
		return refused("The callback has no state: open the URL from '%s<role>' to log in.", authURL), nil
	}
	st, err := b.takeState(ctx, s, params["state"])
	if err != nil {
		return nil, err
	}
	if st == nil {
		return refused("This login is unknown or was already completed, or its role was changed or deleted after it began, or a newer login of the role replaced it. Start again with '%s<role>'.", authURL), nil
	}
	if !b.now().Before(st.Expires) {
		return refused("This login expired (it must complete within the config's auth_state_ttl). Start again with '%s%s'.", authURL, st.Role), nil
	}
	if code := params["error"]; code != "" {
		msg := fmt.Sprintf("The IdP refused the login for role %q: %s", st.Role, backend.Sanitize(code, 64))
		if desc := params["error_description"]; desc != "" {
			msg += ": " + backend.Sanitize(desc, 256)
		}
		b.Logger().Info("IdP refused a login", "role", st.Role, "error", backend.Sanitize(code, 64))
		// The config label comes from the stored state, never from the request.
		b.metrics.AuthCodeLogin(st.Config, false)
		return refused("%s", msg), nil
	}
	if params["code"] == "" {
		return refused("The IdP sent no code for role %q.", st.Role), nil
	}

	role, err := b.role(ctx, s, st.Role)
	if err != nil {
		return nil, err
	}
	var cfg *configState
	if role != nil && role.Config == st.Config {
		if cfg, err = b.config(ctx, s, role.Config); err != nil {
			return nil, err
		}
	}
	if cfg == nil || role.grant() != backend.GrantAuthorizationCode || cfg.entry.Generation != st.Generation ||
		fingerprint(role, cfg) != st.Fingerprint || !slices.Contains(cfg.entry.RedirectURIs, st.RedirectURI) ||
		role.PerEntity != (st.Entity != "") || (role.BoundSubject != "") != (st.Nonce != "") {
		return refused("Role %q or its config was changed or deleted after this login began. Start again with '%s%s'.", st.Role, authURL, st.Role), nil
	}

	h := holder{entity: st.Entity, perEntity: role.PerEntity}
	stored, err := b.login(ctx, s, st.Role, role, cfg, h, began, func(ctx context.Context) (*backend.Token, error) {
		tok, err := cfg.endpoint.RequestToken(ctx, backend.TokenRequest{
			Grant: backend.GrantAuthorizationCode, Code: params["code"], RedirectURI: st.RedirectURI,
			CodeVerifier: st.Verifier, Extra: role.ExtraParams,
		})
		if err != nil {
			return nil, err
		}
		return tok, b.checkLoginSubject(ctx, cfg, role, st.Entity, st.Nonce, tok)
	})
	if err != nil {
		if m, ok := isSubjectMismatch(err); ok {
			// A token of someone else's login: never stored, and revoked.
			b.revokeDropped(ctx, []toRevoke{{key: tokenKeyOf(st.Role, role, cfg, h), cfg: cfg, tok: &backend.StoredToken{Token: *m.token}}})
			b.metrics.PerEntityLogin(st.Config, st.Role, backend.LoginRefusedSubject)
		}
		if res := loginRefused(st.Role, authURL, mount, err); res != nil {
			b.Logger().Warn("login not completed", "role", st.Role, "error", res.message)
			b.metrics.AuthCodeLogin(st.Config, false)
			if role.PerEntity && !isSubjectMismatchErr(err) {
				b.metrics.PerEntityLogin(st.Config, st.Role, backend.LoginFailed)
			}
			return res, nil
		}
		return nil, err
	}
	if role.PerEntity {
		b.metrics.PerEntityLogin(st.Config, st.Role, backend.LoginSuccess)
	}
	tok := &stored.Token
	b.metrics.AuthCodeLogin(st.Config, true)
	b.Logger().Info("login completed; token stored", "role", st.Role, "config", st.Config, "refresh_token", tok.RefreshToken != "")
	return &callbackResult{
		status: http.StatusOK, role: st.Role, tok: tok,
		message: fmt.Sprintf("Vault now holds a token for role %q until %s. You can close this window.",
			st.Role, tok.Expiry.UTC().Format(time.RFC3339)),
	}, nil
}

// loginRefused is the callback's answer for a login the token store did not
// complete, or nil for an internal failure. The messages never hold the
// code, the state or a token.
func loginRefused(role, authURL, mount string, err error) *callbackResult {
	var idpErr *backend.IdPError
	var held *backend.HeldError
	var dropped *backend.DroppedError
	switch {
	case errors.As(err, &idpErr):
		// Its text is sanitized and redacted of the code and verifier.
		return refused("Vault could not exchange the code for a token for role %q: %s", role, idpErr.Error())
	case errors.As(err, &held):
		return refused("Role %q's config keeps one live token per client (single_active_token), and its current token is held under leases until %s: "+
			"completing this login now would kill it, so the code was not used. Start a new login after that time with '%s%s', or drop the token first ('vault write -f %screds/%s/drop').",
			role, held.Until.UTC().Format(time.RFC3339), authURL, role, mountPrefix(mount), role)
	case isSubjectMismatchErr(err):
		return refused("This login for role %q was refused and nothing was stored: %s. Each person logs in from the URL Vault gave them ('%s%s').",
			role, err.Error(), authURL, role)
	case errors.As(err, &dropped):
		return refused("Role %q was dropped, changed or deleted while this login completed: nothing was stored, and the token was revoked where the IdP allows. Start again with '%s%s'.",
			role, authURL, role)
	}
	return nil
}

// takeState returns the pending login for state and deletes it, under a lock
// so that two callbacks with one state cannot both have it.
func (b *idpBackend) takeState(ctx context.Context, s logical.Storage, state string) (*authState, error) {
	key := authStateKey(state)
	b.stateLock.Lock()
	defer b.stateLock.Unlock()
	st, err := getJSON[authState](ctx, s, key)
	unreadable := errors.Is(err, errUnreadable)
	if (err != nil && !unreadable) || (st == nil && !unreadable) {
		return nil, err
	}
	if err := s.Delete(ctx, key); err != nil {
		return nil, err
	}
	if unreadable {
		b.Logger().Warn("dropped an unreadable login state")
		return nil, nil
	}
	return st, nil
}

// sweepAuthStates deletes expired logins (Vault calls it about every
// minute). It takes no lock: an expired state is refused by the callback
// whoever deletes it first, so the sweep never holds up a login.
func (b *idpBackend) sweepAuthStates(ctx context.Context, req *logical.Request) error {
	if b.storageReadOnly() {
		return nil
	}
	keys, err := req.Storage.List(ctx, authStatePrefix)
	if err != nil {
		return err
	}
	now := b.now()
	for _, k := range keys {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		st, err := getJSON[authState](ctx, req.Storage, authStatePrefix+k)
		unreadable := errors.Is(err, errUnreadable)
		if err != nil && !unreadable {
			return err
		}
		if unreadable || (st != nil && !now.Before(st.Expires)) {
			if err := req.Storage.Delete(ctx, authStatePrefix+k); err != nil {
				return err
			}
		}
	}
	return nil
}

var callbackTemplate = template.Must(template.New("callback").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<title>{{.Title}}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
</body></html>
`))

// callbackPage is the browser's answer (html/template escapes the message).
func callbackPage(res *callbackResult) *logical.Response {
	title := "Login failed"
	if res.tok != nil {
		title = "Login complete"
	}
	var buf bytes.Buffer
	_ = callbackTemplate.Execute(&buf, struct{ Title, Message string }{title, res.message})
	return &logical.Response{Data: map[string]any{
		logical.HTTPContentType: "text/html; charset=utf-8",
		logical.HTTPRawBody:     buf.Bytes(),
		logical.HTTPStatusCode:  res.status,
	}}
}

// loginPrompts are the OIDC prompt values a role may ask for.
var loginPrompts = []string{"login", "consent", "select_account"}

// loginPrompt is the prompt parameter of the role's login URL: the role's
// own, plus consent when offline_access is asked (OIDC Core 11: it is
// ignored otherwise).
func (r *roleEntry) loginPrompt(scopes []string) string {
	prompts := slices.Clone(r.Prompt)
	if slices.Contains(scopes, "offline_access") && !slices.Contains(prompts, "consent") {
		prompts = append(prompts, "consent")
	}
	return strings.Join(prompts, " ")
}
