package idptokens

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/oauth2"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

func (b *idpBackend) pathAuthCode() []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "auth-url/" + framework.GenericNameRegex("role"),
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "auth-url"},
			Fields: map[string]*framework.FieldSchema{
				"role":         {Type: framework.TypeString, Description: "Name of an authorization_code role."},
				"redirect_uri": {Type: framework.TypeString, Description: "One of the config's redirect_uris. Default its first."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback: strict(b.pathAuthURLWrite), Summary: "Begin a login: get the URL to open in a browser.", Responses: authURLResponses(),
					ForwardPerformanceStandby: true,
				},
			},
			HelpSynopsis:    "Begin an authorization code login for a role.",
			HelpDescription: strings.TrimSpace(authURLHelp),
		},
		{
			Pattern:      "callback",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "callback"},
			Fields: map[string]*framework.FieldSchema{
				"code":              {Type: framework.TypeString, Query: true, Description: "Authorization code from the IdP."},
				"state":             {Type: framework.TypeString, Query: true, Description: "State returned by auth-url."},
				"error":             {Type: framework.TypeString, Query: true, Description: "Error code from the IdP (RFC 6749 4.1.2.1)."},
				"error_description": {Type: framework.TypeString, Query: true, Description: "Error description from the IdP."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				// GET from the browser (unauthenticated, query parameters).
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathCallback, Summary: "Redirect target of the IdP: completes a login (HTML answer).", Responses: callbackReadResponses(),
					ForwardPerformanceStandby: true,
				},
				// vault write idp/callback code=... state=... (JSON answer).
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathCallback, Summary: "Complete a login with a code and state.", Responses: callbackWriteResponses(),
					ForwardPerformanceStandby: true,
				},
			},
			HelpSynopsis:    "Complete an authorization code login.",
			HelpDescription: strings.TrimSpace(callbackHelp),
		},
	}
}

func (b *idpBackend) pathAuthURLWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := b.canMint(); err != nil {
		return nil, err
	}
	name := d.Get("role").(string)
	var redirect string
	if r := (fieldReader{d: d}); !r.text("redirect_uri", &redirect) && r.err != nil {
		return r.err, nil
	}

	role, cfg, resp, err := b.roleAndConfig(ctx, req.Storage, name)
	if resp != nil || err != nil {
		return resp, err
	}
	if role.grant() != backend.GrantAuthorizationCode {
		return logical.ErrorResponse("role %q uses grant_type %s; auth-url is only for authorization_code roles", name, role.GrantType), nil
	}
	h, err := b.holderOf(req, name, role, false)
	if err != nil {
		return b.credsError(name, err)
	}
	e := cfg.entry
	authURL, err := cfg.authorizationEndpoint(ctx)
	if err != nil {
		return logical.ErrorResponse("config %q: %v", role.Config, err), nil
	}
	if authURL == "" {
		return logical.ErrorResponse("config %q has no auth_url (and its issuer advertises no authorization_endpoint): write %sconfig/%s auth_url=<the IdP's authorization endpoint>", role.Config, mountPrefix(req.MountPoint), role.Config), nil
	}
	if len(e.RedirectURIs) == 0 {
		return logical.ErrorResponse("config %q has no redirect_uris: write %sconfig/%s redirect_uris=https://<vault>/v1/%scallback", role.Config, mountPrefix(req.MountPoint), role.Config, mountPrefix(req.MountPoint)), nil
	}
	if redirect == "" {
		redirect = e.RedirectURIs[0]
	} else if !slices.Contains(e.RedirectURIs, redirect) {
		return fieldError("redirect_uri", "%q is not one of config %q's redirect_uris", backend.Sanitize(redirect, 200), role.Config), nil
	}

	state, err := newState()
	if err != nil {
		return nil, err
	}
	now := b.now()
	st := &authState{
		Role: name, Config: role.Config, Generation: e.Generation, Fingerprint: fingerprint(role, cfg),
		RedirectURI: redirect, Verifier: oauth2.GenerateVerifier(),
		Created: now, Expires: now.Add(e.authStateTTL()), Entity: h.entity,
	}
	if role.BoundSubject != "" {
		if st.Nonce, err = newState(); err != nil {
			return nil, err
		}
	}
	if err := b.storePendingLogin(ctx, req.Storage, authStateKey(state), st); err != nil {
		return nil, err
	}
	oc := oauth2.Config{
		ClientID:    e.ClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: authURL},
		RedirectURL: redirect,
		Scopes:      role.scopes(cfg),
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(st.Verifier)}
	if prompt := role.loginPrompt(oc.Scopes); prompt != "" {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", prompt))
	}
	if st.Nonce != "" {
		opts = append(opts, oauth2.SetAuthURLParam("nonce", st.Nonce))
	}
	b.Logger().Debug("login begun", "role", name, "config", role.Config)
	return &logical.Response{Data: map[string]any{
		"url":          oc.AuthCodeURL(state, opts...),
		"state":        state,
		"redirect_uri": redirect,
		"expires_at":   st.Expires.UTC().Format(time.RFC3339),
	}}, nil
}

func (b *idpBackend) pathCallback(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := b.canMint(); err != nil {
		// Before anything is consumed: Vault forwards to the active node.
		return nil, err
	}
	res, err := b.completeLogin(ctx, req.Storage, req.MountPoint, d)
	if err != nil {
		return nil, err
	}
	if req.Operation == logical.ReadOperation {
		return callbackPage(res), nil
	}
	if res.tok == nil {
		return logical.ErrorResponse("%s", res.message), nil
	}
	return &logical.Response{Data: map[string]any{
		"role":       res.role,
		"expires_at": res.tok.Expiry.UTC().Format(time.RFC3339),
		"scope":      res.tok.Scope,
	}}, nil
}

const authURLHelp = `
Begins an authorization code login for a role (grant_type=authorization_code):
returns url, to open in a browser, and state. The URL carries the config's
client_id, the role's scopes, redirect_uri (one of the config's
redirect_uris, by default the first), response_type=code, the state and a
PKCE S256 code_challenge; the verifier stays in Vault.

After the login the IdP sends the browser to the redirect_uri, which should be
this mount's callback (https://<vault>/v1/<mount>/callback). The state is
single-use and expires after the config's auth_state_ttl (default 10m).
`

const callbackHelp = `
Completes a login begun with auth-url: takes code and state, exchanges the
code at the IdP (with the client's credentials, the same redirect_uri and the
PKCE verifier) and stores the token as the role's cached token, which
creds/<role> then hands out (and refreshes, where the IdP issued a refresh
token).

This path is unauthenticated, as the browser arriving from the IdP holds no
Vault token: a GET with query parameters answers an HTML page. A write
(vault write <mount>/callback code=... state=...) answers role, expires_at
and scope. Neither answer contains the token.
`

// authURLResponses: auth-url/<role>.
func authURLResponses() map[int][]framework.Response {
	return ok200("Where to log in.", map[string]*framework.FieldSchema{
		"url":          respString("The authorization URL to open in a browser."),
		"state":        respString("The login's single-use state."),
		"redirect_uri": respString("Where the IdP sends the browser back."),
		"expires_at":   respString("When the login expires (RFC 3339, UTC)."),
	})
}

// callbackReadResponses: the browser's GET of callback, an HTML page.
func callbackReadResponses() map[int][]framework.Response {
	page := framework.Response{Description: "An HTML page saying whether the login completed.", MediaType: "text/html"}
	return map[int][]framework.Response{http.StatusOK: {page}, http.StatusBadRequest: {page}}
}

// callbackWriteResponses: callback written with code and state.
func callbackWriteResponses() map[int][]framework.Response {
	return ok200("The login completed; the role now holds a token.", map[string]*framework.FieldSchema{
		"role":       respString("The role that holds the token."),
		"expires_at": respString("When the token expires (RFC 3339, UTC)."),
		"scope":      respString("The scopes granted, space-separated."),
	})
}
