package idptokens

// Any standard server (issue 7): discovery from an issuer, private_key_jwt
// and tls_client_auth, rotation of the client secret or key without
// downtime, and RFC 7009 revocation of dropped tokens. The IdP side of each
// is in backend/ (discovery.go, clientauth.go, jwtassertion.go, tlsclient.go,
// revoke.go); this file holds the config fields, the rotate and drop paths,
// and the revocations made when a token is dropped.

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// standardsEntry is the part of a stored config added by issue 7.
type standardsEntry struct {
	// Issuer, when set, is read for its metadata (discovery): token,
	// authorization and revocation endpoints that are not set explicitly,
	// and the client authentication methods the server supports.
	Issuer string `json:"issuer,omitempty"`
	// private_key_jwt: the PEM private key, its kid and the JWS algorithm
	// (derived from the key when empty).
	PrivateKey   string `json:"private_key,omitempty"`
	PrivateKeyID string `json:"private_key_id,omitempty"`
	SigningAlg   string `json:"signing_alg,omitempty"`
	// tls_client_auth: the PEM certificate (chain) and its key.
	TLSClientCert string `json:"tls_client_cert,omitempty"`
	TLSClientKey  string `json:"tls_client_key,omitempty"`
	// Rotation: the credentials replaced by the last rotate, tried once when
	// the current one is refused with invalid_client.
	PreviousClientSecret string `json:"previous_client_secret,omitempty"`
	PreviousPrivateKey   string `json:"previous_private_key,omitempty"`
	PreviousPrivateKeyID string `json:"previous_private_key_id,omitempty"`
	PreviousSigningAlg   string `json:"previous_signing_alg,omitempty"`
}

// Size limits of the PEM fields.
const (
	maxKeyPEMLen  = 16 << 10
	maxCertPEMLen = 64 << 10
	// revokeTimeout bounds the revocations made for one delete or drop.
	revokeTimeout = 20 * time.Second
	// clientAuthAuto leaves the method to the server's metadata.
	clientAuthAuto = "auto"
)

// credentialSecretFields are write-only like secretFields; a read shows
// <field>_set. They are not in secretFields because presets never need them.
var credentialSecretFields = []string{"private_key", "tls_client_key"}

func standardsConfigFields(secret func(string) *framework.FieldSchema) map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"issuer": {Type: framework.TypeString, Description: "Issuer identifier: its metadata (<issuer>/.well-known/openid-configuration, " +
			"else RFC 8414 oauth-authorization-server) gives token_url, auth_url, revocation_url and, with client_auth unset or auto, the method."},
		"private_key":     secret("PEM private key (RSA 2048+ or EC P-256) for client_auth=private_key_jwt."),
		"private_key_id":  {Type: framework.TypeString, Description: "kid header of the client assertions (the key's id in the JWKS registered at the IdP)."},
		"signing_alg":     {Type: framework.TypeString, Description: "JWS algorithm of the client assertions: RS256, PS256 or ES256. Default from the key: RS256 for RSA, ES256 for EC."},
		"tls_client_cert": {Type: framework.TypeString, Description: "PEM client certificate (leaf first) for client_auth=tls_client_auth (RFC 8705)."},
		"tls_client_key":  secret("PEM private key of tls_client_cert."),
	}
}

// addStandardsData adds the standards fields to a config read.
func addStandardsData(data map[string]any, e *configEntry) {
	data["issuer"] = e.Issuer
	data["private_key_id"] = e.PrivateKeyID
	data["signing_alg"] = e.SigningAlg
	data["tls_client_cert"] = e.TLSClientCert
	data["private_key_set"] = e.PrivateKey != ""
	data["tls_client_key_set"] = e.TLSClientKey != ""
	data["previous_client_secret_set"] = e.PreviousClientSecret != ""
	data["previous_private_key_set"] = e.PreviousPrivateKey != ""
	if e.ClientAuth == "" && e.Issuer != "" {
		data["client_auth"] = clientAuthAuto
	}
}

// heldSecrets is every write-only value of a config, by field name.
func heldSecrets(e *configEntry) map[string]string {
	return map[string]string{
		"client_secret": e.ClientSecret, "password": e.Password, "security_key": e.SecurityKey,
		"private_key": e.PrivateKey, "tls_client_key": e.TLSClientKey,
	}
}

// clearPrevious forgets the previous credentials of a rotation.
func clearPrevious(e *configEntry) {
	e.PreviousClientSecret, e.PreviousPrivateKey, e.PreviousPrivateKeyID, e.PreviousSigningAlg = "", "", "", ""
}

// validateClientCredentials checks client_auth against the credentials
// held, the PEM fields, and the issuer.
func validateClientCredentials(e *configEntry) *logical.Response {
	for _, t := range []struct{ field, value string }{
		{"issuer", e.Issuer}, {"private_key_id", e.PrivateKeyID}, {"signing_alg", e.SigningAlg}, {"client_auth", e.ClientAuth},
		{"client_secret", e.PreviousClientSecret},
	} {
		if resp := checkText(t.field, t.value, maxFieldLen); resp != nil {
			return resp
		}
	}
	if e.Issuer != "" {
		if err := backend.CheckEndpointURL(e.Issuer, e.AllowInsecureHTTP); err != nil {
			return fieldError("issuer", "%v", err)
		}
		if _, err := backend.WellKnownURLs(e.Issuer); err != nil {
			return fieldError("issuer", "%v", err)
		}
	}
	switch e.ClientAuth {
	case clientAuthAuto, "":
		if e.Issuer == "" {
			return fieldError("client_auth", "auto needs an issuer, whose metadata names the methods the server supports")
		}
		e.ClientAuth = ""
	default:
		a, ok := backend.ParseClientAuthMethod(e.ClientAuth)
		if !ok {
			return fieldError("client_auth", "must be basic, post, private_key_jwt or tls_client_auth (or auto with an issuer), not %q", truncate(e.ClientAuth, 40))
		}
		e.ClientAuth = string(a)
	}
	for _, k := range []struct{ field, pem, kid, alg string }{
		{"private_key", e.PrivateKey, e.PrivateKeyID, e.SigningAlg},
		{"private_key", e.PreviousPrivateKey, e.PreviousPrivateKeyID, e.PreviousSigningAlg},
	} {
		if k.pem == "" {
			continue
		}
		if len(k.pem) > maxKeyPEMLen {
			return fieldError(k.field, "longer than %d bytes", maxKeyPEMLen)
		}
		if _, err := backend.NewAssertionSigner(k.pem, k.kid, k.alg); err != nil {
			return fieldError(k.field, "%v", err)
		}
	}
	if e.SigningAlg != "" && e.PrivateKey == "" {
		return fieldError("signing_alg", "is for private_key_jwt; write private_key too")
	}
	if (e.TLSClientCert == "") != (e.TLSClientKey == "") {
		return fieldError("tls_client_cert", "tls_client_cert and tls_client_key go together")
	}
	if e.TLSClientCert != "" {
		if len(e.TLSClientCert) > maxCertPEMLen || len(e.TLSClientKey) > maxKeyPEMLen {
			return fieldError("tls_client_cert", "tls_client_cert or tls_client_key is too long")
		}
		if _, err := backend.ParseClientCertificate(e.TLSClientCert, e.TLSClientKey, time.Now()); err != nil {
			return fieldError("tls_client_cert", "%v", err)
		}
	}
	held := backend.HeldCredentials{Secret: e.ClientSecret != "", Key: e.PrivateKey != "", TLSCert: e.TLSClientCert != ""}
	switch backend.ClientAuth(e.ClientAuth) {
	case backend.ClientAuthBasic, backend.ClientAuthPost:
		if !held.Secret {
			return fieldError("client_secret", "required for client_auth=%s", e.ClientAuth)
		}
	case backend.ClientAuthPrivateKeyJWT:
		if !held.Key {
			return fieldError("private_key", "required for client_auth=private_key_jwt")
		}
	case backend.ClientAuthTLS:
		if !held.TLSCert {
			return fieldError("tls_client_cert", "tls_client_cert and tls_client_key are required for client_auth=tls_client_auth")
		}
	case "":
		if !held.Secret && !held.Key && !held.TLSCert {
			return fieldError("client_secret", "a client credential is required: client_secret, private_key, or tls_client_cert and tls_client_key")
		}
	}
	return nil
}

// setupStandards gives a new config state's endpoint its revocation URL,
// previous secret, signers, client certificate and discovery.
func setupStandards(st *configState, now func() time.Time) error {
	e, ep := st.entry, st.endpoint
	ep.RevocationURL = e.RevocationURL
	ep.PreviousClientSecret = e.PreviousClientSecret
	var err error
	if e.PrivateKey != "" {
		if ep.Signer, err = backend.NewAssertionSigner(e.PrivateKey, e.PrivateKeyID, e.SigningAlg); err != nil {
			return errors.New("private_key " + err.Error())
		}
	}
	if e.PreviousPrivateKey != "" {
		if ep.PreviousSigner, err = backend.NewAssertionSigner(e.PreviousPrivateKey, e.PreviousPrivateKeyID, e.PreviousSigningAlg); err != nil {
			return errors.New("previous private_key " + err.Error())
		}
	}
	if e.TLSClientCert != "" {
		cert, err := backend.ParseClientCertificate(e.TLSClientCert, e.TLSClientKey, now())
		if err != nil {
			return err
		}
		if err := backend.UseClientCertificate(ep.HTTP, cert); err != nil {
			return err
		}
		ep.TLSClientCert = true
	}
	if e.Issuer != "" {
		st.discovery = &backend.Discovery{Issuer: e.Issuer, HTTP: ep.HTTP, AllowInsecureHTTP: e.AllowInsecureHTTP, Now: now}
		ep.Discovery = st.discovery
	}
	return nil
}

// wireStandards connects a config state to the backend: the fallback to a
// previous credential is logged and counted, and discovered endpoints are
// held to allowed_hosts.
func (b *idpBackend) wireStandards(st *configState) {
	st.endpoint.OnFallback = func(ev backend.FallbackEvent) {
		b.metrics.SecretFallback(ev.Config, ev.Succeeded)
		if ev.Succeeded {
			b.Logger().Warn("the IdP refused the current client credential (invalid_client) and accepted the previous one: "+
				"register the new one at the IdP before clearing the previous one",
				"config", ev.Config, "operation", ev.Operation)
			return
		}
		b.Logger().Warn("the IdP refused both the current and the previous client credential",
			"config", ev.Config, "operation", ev.Operation, "error", ev.Err)
	}
	if st.discovery != nil {
		st.discovery.AllowedHosts = b.allowedHosts
	}
}

// discoverAtWrite reads the issuer's metadata when a config is written, so
// that a wrong issuer fails the write (400 naming the issuer and the URL
// read), and checks that the method left to the server can be chosen.
func (b *idpBackend) discoverAtWrite(ctx context.Context, st *configState) *logical.Response {
	if st.discovery == nil {
		return nil
	}
	st.discovery.AllowedHosts = b.allowedHosts
	md, err := st.discovery.Fetch(ctx)
	if err != nil {
		return fieldError("issuer", "%v", err)
	}
	if st.entry.ClientAuth == "" {
		held := backend.HeldCredentials{Secret: st.entry.ClientSecret != "", Key: st.entry.PrivateKey != "", TLSCert: st.entry.TLSClientCert != ""}
		if _, err := backend.ChooseClientAuth(md.TokenEndpointAuthMethods, held); err != nil {
			return fieldError("client_auth", "%v", err)
		}
	}
	return nil
}

func (b *idpBackend) pathStandards() []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "config/" + framework.GenericNameRegex("name") + "/rotate",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "idp", OperationVerb: "rotate", OperationSuffix: "config"},
			Fields: map[string]*framework.FieldSchema{
				"name":           {Type: framework.TypeString, Description: "Name of the connection."},
				"client_secret":  {Type: framework.TypeString, Description: "The new client secret; the current one becomes the previous one.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
				"private_key":    {Type: framework.TypeString, Description: "The new PEM private key for private_key_jwt; the current one becomes the previous one.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
				"private_key_id": {Type: framework.TypeString, Description: "kid of the new private_key."},
				"signing_alg":    {Type: framework.TypeString, Description: "JWS algorithm of the new private_key (default from the key)."},
				"clear_previous": {Type: framework.TypeBool, Description: "Forget the previous secret and key (once the IdP no longer accepts them)."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathConfigRotate, Summary: "Rotate the client secret or key, keeping the previous one as a fallback."},
			},
			HelpSynopsis:    "Rotate a config's client secret or private key without downtime.",
			HelpDescription: strings.TrimSpace(rotateHelp),
		},
		{
			Pattern:      "creds/" + framework.GenericNameRegex("role") + "/drop",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "idp", OperationVerb: "drop", OperationSuffix: "credentials"},
			Fields: map[string]*framework.FieldSchema{
				"role": {Type: framework.TypeString, Description: "Name of the role."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathCredsDrop, Summary: "Drop the role's cached token (and revoke it at the IdP) so that the next read mints a new one."},
			},
			HelpSynopsis:    "Drop a role's cached token.",
			HelpDescription: strings.TrimSpace(dropHelp),
		},
	}
}

func (b *idpBackend) pathConfigRotate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(d); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	secret, hasSecret, resp := getString(d, "client_secret")
	if resp != nil {
		return resp, nil
	}
	key, hasKey, resp := getString(d, "private_key")
	if resp != nil {
		return resp, nil
	}
	kid, _, resp := getString(d, "private_key_id")
	if resp != nil {
		return resp, nil
	}
	alg, _, resp := getString(d, "signing_alg")
	if resp != nil {
		return resp, nil
	}
	clear, _, resp := getBool(d, "clear_previous")
	if resp != nil {
		return resp, nil
	}
	secret, key = strings.TrimSpace(secret), strings.TrimSpace(key)
	if !hasSecret && !hasKey && !clear {
		return logical.ErrorResponse("give client_secret or private_key to rotate, or clear_previous=true"), nil
	}
	if (kid != "" || alg != "") && !hasKey {
		return fieldError("private_key_id", "private_key_id and signing_alg go with a new private_key"), nil
	}

	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	old, err := loadConfigEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if old == nil {
		return logical.ErrorResponse("no config named %q", name), nil
	}
	e := *old
	if hasSecret {
		switch {
		case secret == "":
			return fieldError("client_secret", "must not be empty"), nil
		case secret == e.ClientSecret:
			return fieldError("client_secret", "is the current one already"), nil
		}
		e.PreviousClientSecret, e.ClientSecret = e.ClientSecret, secret
	}
	if hasKey {
		switch {
		case key == "":
			return fieldError("private_key", "must not be empty"), nil
		case key == e.PrivateKey:
			return fieldError("private_key", "is the current one already"), nil
		}
		e.PreviousPrivateKey, e.PreviousPrivateKeyID, e.PreviousSigningAlg = e.PrivateKey, e.PrivateKeyID, e.SigningAlg
		e.PrivateKey, e.PrivateKeyID, e.SigningAlg = key, kid, alg
	}
	if clear {
		clearPrevious(&e)
	}
	provider, err := backend.LookupProvider(e.Provider)
	if err != nil {
		return fieldError("provider", "%v", err), nil
	}
	if resp := validateConfig(&e, provider); resp != nil {
		return resp, nil
	}
	// The generation stays: tokens minted with the former secret are still
	// the same client's, and stay valid.
	st, err := newConfigState(name, &e, b.clock, &b.metrics)
	if err != nil {
		return logical.ErrorResponse("%v", err), nil
	}
	if prev, ok := b.configs.Get(name); ok && prev.discovery != nil && st.discovery != nil {
		st.discovery.Seed(prev.discovery)
	}
	if err := b.storeConfig(ctx, req.Storage, st); err != nil {
		return nil, err
	}
	b.Logger().Info("client credentials rotated", "config", name, "client_secret", hasSecret, "private_key", hasKey, "previous_cleared", clear)
	return &logical.Response{Data: map[string]any{
		"client_secret_set":          e.ClientSecret != "",
		"previous_client_secret_set": e.PreviousClientSecret != "",
		"private_key_set":            e.PrivateKey != "",
		"private_key_id":             e.PrivateKeyID,
		"previous_private_key_set":   e.PreviousPrivateKey != "",
	}}, nil
}

// toRevoke is a dropped token to revoke at its config's IdP.
type toRevoke struct {
	key string
	cfg *configState
	tok *backend.StoredToken
}

// roleTokenToRevoke is the role's own cached token (not a token shared by
// the config's roles), before it is dropped.
func (b *idpBackend) roleTokenToRevoke(ctx context.Context, s logical.Storage, name string) ([]toRevoke, error) {
	role, err := b.role(ctx, s, name)
	if err != nil || role == nil {
		return nil, err
	}
	cfg, err := b.config(ctx, s, role.Config)
	if err != nil || cfg == nil {
		return nil, err
	}
	return b.peekTokens(ctx, s, cfg, "role/"+name)
}

// tokensOfConfigToRevoke is every cached token of a config, before they are
// dropped (the keys dropTokensOfConfig drops).
func (b *idpBackend) tokensOfConfigToRevoke(ctx context.Context, s logical.Storage, config string) ([]toRevoke, error) {
	cfg, err := b.config(ctx, s, config)
	if err != nil || cfg == nil {
		return nil, err
	}
	roles, err := b.rolesOf(ctx, s, config)
	if err != nil {
		return nil, err
	}
	keys := []string{"config/" + config}
	for name := range roles {
		keys = append(keys, "role/"+name)
	}
	sort.Strings(keys)
	return b.peekTokens(ctx, s, cfg, keys...)
}

func (b *idpBackend) peekTokens(ctx context.Context, s logical.Storage, cfg *configState, keys ...string) ([]toRevoke, error) {
	var out []toRevoke
	for _, k := range keys {
		tok, err := b.tokens.Peek(ctx, storageKV{s}, k)
		if err != nil {
			return nil, err
		}
		if tok != nil {
			out = append(out, toRevoke{key: k, cfg: cfg, tok: tok})
		}
	}
	return out, nil
}

// revokeDropped revokes dropped tokens at their IdP (RFC 7009): the refresh
// token first (revoking it may revoke its access tokens too), then the
// access token, which not every server can revoke. Failures are logged and
// returned as warnings; they never undo the drop. Nothing is done without a
// revocation endpoint (explicit, or from discovery).
func (b *idpBackend) revokeDropped(ctx context.Context, list []toRevoke) (warnings []string) {
	if len(list) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revokeTimeout)
	defer cancel()
	for _, r := range list {
		for _, t := range []struct{ token, hint string }{
			{r.tok.RefreshToken, backend.HintRefreshToken}, {r.tok.AccessToken, backend.HintAccessToken},
		} {
			if t.token == "" {
				continue
			}
			err := r.cfg.endpoint.Revoke(ctx, t.token, t.hint)
			switch {
			case errors.Is(err, backend.ErrNoRevocationEndpoint):
				b.Logger().Debug("dropped token not revoked: the config has no revocation endpoint", "config", r.cfg.name, "token_key", r.key)
				return append(warnings, "the token was not revoked at the IdP: config "+r.cfg.name+" has no revocation_url (nor an issuer whose metadata names one)")
			case err != nil:
				b.Logger().Warn("revocation of a dropped token failed", "config", r.cfg.name, "token_key", r.key, "token_type_hint", t.hint, "error", err)
				warnings = append(warnings, "revoking the "+t.hint+" failed: "+err.Error())
			default:
				b.Logger().Debug("dropped token revoked", "config", r.cfg.name, "token_key", r.key, "token_type_hint", t.hint)
			}
		}
	}
	return warnings
}

func (b *idpBackend) pathCredsDrop(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(d); resp != nil {
		return resp, nil
	}
	name := d.Get("role").(string)
	role, err := b.role(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return logical.ErrorResponse("no role named %q", name), nil
	}
	cfg, err := b.config(ctx, req.Storage, role.Config)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return logical.ErrorResponse("role %q uses config %q, which does not exist", name, role.Config), nil
	}
	key := tokenKey(name, role, cfg)
	list, err := b.peekTokens(ctx, req.Storage, cfg, key)
	if err != nil {
		return nil, err
	}
	if err := b.tokens.Drop(ctx, storageKV{req.Storage}, key); err != nil {
		return nil, err
	}
	resp := &logical.Response{Data: map[string]any{"dropped": len(list) > 0, "token_key": key}}
	if strings.HasPrefix(key, "config/") {
		// One live token per client: every role of the config shares it.
		roles, err := b.rolesOf(ctx, req.Storage, role.Config)
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(roles))
		for n := range roles {
			names = append(names, n)
		}
		slices.Sort(names)
		resp.Data["shared_by"] = names
		resp.AddWarning("the token is shared by every role of config " + role.Config + " (" + strings.Join(names, ", ") + "): all of them get a new one")
	}
	b.Logger().Info("cached token dropped", "role", name, "config", role.Config, "token_key", key, "had_token", len(list) > 0)
	for _, w := range b.revokeDropped(ctx, list) {
		resp.AddWarning(w)
	}
	return resp, nil
}

const rotateHelp = `
Rotates the client secret (or private_key_jwt key) without downtime:

  vault write idp/config/<name>/rotate client_secret=<new>
  vault write idp/config/<name>/rotate private_key=@new.pem private_key_id=<kid>

The current value becomes the previous one. When the IdP refuses the current
one with invalid_client, the previous one is tried once (logged and counted
in secret_fallbacks_total), so the IdP may be updated before or after Vault.
Once the IdP accepts only the new one:

  vault write idp/config/<name>/rotate clear_previous=true

Cached tokens stay valid: the config's generation does not change.
`

const dropHelp = `
Drops the role's cached token so that the next creds read mints a new one
(for when the IdP revoked a token behind Vault's back). The dropped refresh
and access tokens are revoked at the config's revocation endpoint (RFC 7009)
when it has one; a failed revocation is a warning, and the token is dropped
all the same.

When the config keeps one live token per client (provider=microtek), the
token is shared by every role of the config: dropping it affects them all.
`

// authorizationEndpoint is the config's auth_url, or, when it names an
// issuer and no auth_url, the discovered authorization_endpoint.
func (c *configState) authorizationEndpoint(ctx context.Context) (string, error) {
	if c.entry.AuthURL != "" || c.discovery == nil {
		return c.entry.AuthURL, nil
	}
	md, err := c.discovery.Metadata(ctx)
	if err != nil {
		return "", err
	}
	return md.AuthorizationEndpoint, nil
}
