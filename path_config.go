package idptokens

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// maxRequestTimeout bounds request_timeout: a Vault request should not hang
// for longer than Vault's own default request timeout.
const maxRequestTimeout = 90 * time.Second

func (b *idpBackend) pathConfig() []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "config/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "idp", OperationSuffix: "configs"},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: listUnder(configPrefix), Summary: "List IdP connections."},
			},
			HelpSynopsis: "List IdP connections.",
		},
		{
			Pattern:        "config/" + framework.GenericNameRegex("name"),
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: "idp", OperationSuffix: "config"},
			Fields:         configFields(),
			ExistenceCheck: b.configExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathConfigWrite, Summary: "Create an IdP connection."},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathConfigWrite, Summary: "Update an IdP connection; omitted secrets are kept."},
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathConfigRead, Summary: "Read an IdP connection (secrets show only as *_set)."},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathConfigDelete, Summary: "Delete an IdP connection and its cached tokens."},
			},
			HelpSynopsis:    "Configure a connection to one identity provider.",
			HelpDescription: strings.TrimSpace(configHelp),
		},
	}
}

func configFields() map[string]*framework.FieldSchema {
	secret := func(desc string) *framework.FieldSchema {
		return &framework.FieldSchema{Type: framework.TypeString, Description: desc + " Write-only.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}}
	}
	fields := map[string]*framework.FieldSchema{
		"name":                {Type: framework.TypeString, Description: "Name of the connection."},
		"provider":            {Type: framework.TypeString, Description: "Preset: " + strings.Join(backend.ProviderNames(), ", ") + ". Default oauth2."},
		"token_url":           {Type: framework.TypeString, Description: "Token endpoint. Defaults to the preset's where its document gives one (mwi, microtek)."},
		"auth_url":            {Type: framework.TypeString, Description: "Authorization endpoint, for the authorization_code grant."},
		"revocation_url":      {Type: framework.TypeString, Description: "RFC 7009 revocation endpoint (optional)."},
		"client_id":           {Type: framework.TypeString, Description: "OAuth2 client_id."},
		"client_secret":       secret("OAuth2 client_secret."),
		"client_auth":         {Type: framework.TypeString, Description: "How the client authenticates: basic (HTTP Basic header) or post (form body). Default from the preset."},
		"username":            {Type: framework.TypeString, Description: "Resource owner's username, for the password grant (MWI: the LBS operator's username)."},
		"password":            secret("Resource owner's password, for the password grant."),
		"access_code":         {Type: framework.TypeString, Description: "MWI LBS operator's access code."},
		"security_key":        secret("MWI LBS operator's security key."),
		"scopes":              {Type: framework.TypeCommaStringSlice, Description: "Default scopes of roles that name none (MWI: the api_id)."},
		"request_timeout":     {Type: framework.TypeDurationSecond, Description: "Bound of one HTTP exchange with the IdP. Default 10s."},
		"ca_cert":             {Type: framework.TypeString, Description: "PEM CA bundle to trust for the IdP, for private CAs."},
		"default_token_ttl":   {Type: framework.TypeDurationSecond, Description: "Lifetime assumed when the IdP omits expires_in. Without it, a response without expires_in is an error."},
		"allowed_token_types": {Type: framework.TypeCommaStringSlice, Description: "token_type values accepted from the IdP. Default Bearer."},
		"allow_insecure_http": {Type: framework.TypeBool, Description: "Allow http:// endpoints on non-loopback hosts (credentials then travel in clear). Default false."},
		"redirect_uris":       {Type: framework.TypeCommaStringSlice, Description: "Redirect URIs auth-url may use (authorization_code); the first is the default. Normally https://<vault>/v1/<mount>/callback."},
		"auth_state_ttl":      {Type: framework.TypeDurationSecond, Description: "How long a login begun with auth-url may take. Default 10m."},
	}
	for k, v := range standardsConfigFields(secret) {
		fields[k] = v
	}
	for k, v := range grantsConfigFields(secret) {
		fields[k] = v
	}
	return fields
}

// secretFields are write-only: reads show <field>_set instead.
var secretFields = []string{"client_secret", "password", "security_key"}

func (b *idpBackend) configExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	e, err := loadConfigEntry(ctx, req.Storage, d.Get("name").(string))
	return e != nil, err
}

func (b *idpBackend) pathConfigRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	e, err := loadConfigEntry(ctx, req.Storage, d.Get("name").(string))
	if err != nil || e == nil {
		return nil, err
	}
	data := map[string]any{
		"provider":            e.Provider,
		"token_url":           e.TokenURL,
		"auth_url":            e.AuthURL,
		"revocation_url":      e.RevocationURL,
		"client_id":           e.ClientID,
		"client_auth":         e.ClientAuth,
		"username":            e.Username,
		"access_code":         e.AccessCode,
		"scopes":              nonNil(e.Scopes),
		"request_timeout":     int64(e.RequestTimeout.Seconds()),
		"ca_cert":             e.CACert,
		"default_token_ttl":   int64(e.DefaultTokenTTL.Seconds()),
		"allowed_token_types": nonNil(e.AllowedTokenTypes),
		"allow_insecure_http": e.AllowInsecureHTTP,
		"redirect_uris":       nonNil(e.RedirectURIs),
		"auth_state_ttl":      int64(e.AuthStateTTL.Seconds()),
		"client_secret_set":   e.ClientSecret != "",
		"password_set":        e.Password != "",
		"security_key_set":    e.SecurityKey != "",
	}
	addStandardsData(data, e)
	data["device_authorization_url"] = e.DeviceAuthorizationURL
	return &logical.Response{Data: data}, nil
}

func (b *idpBackend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(d); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	b.writeLock.Lock()
	defer b.writeLock.Unlock()

	old, err := loadConfigEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	e := &configEntry{Provider: backend.ProviderOAuth2}
	if old != nil {
		*e = *old
	}
	if resp := applyConfigFields(e, d); resp != nil {
		return resp, nil
	}
	if resp := applyGrantsConfigFields(e, d); resp != nil {
		return resp, nil
	}
	if resp := requireSecretsOnURLChange(old, e, d); resp != nil {
		return resp, nil
	}
	provider, err := backend.LookupProvider(e.Provider)
	if err != nil {
		return fieldError("provider", "%v", err), nil
	}
	applyPresetDefaults(e, provider)
	if resp := validateConfig(e, provider); resp != nil {
		return resp, nil
	}
	if resp := validateGrantsConfig(e); resp != nil {
		return resp, nil
	}
	if resp, err := b.checkConfigHosts(ctx, req.Storage, e); resp != nil || err != nil {
		return resp, err
	}
	if old == nil || old.identity() != e.identity() {
		e.Generation = newGeneration()
	}
	st, err := b.newConfigState(name, e)
	if err != nil {
		return fieldError("ca_cert", "%v", err), nil
	}
	if resp := b.discoverAtWrite(ctx, st); resp != nil {
		return resp, nil
	}
	if err := b.storeConfig(ctx, req.Storage, st); err != nil {
		return nil, err
	}
	if old != nil && old.Generation != e.Generation {
		// Tokens of the former client or operator must not be served again.
		if err := b.dropTokensOfConfig(ctx, req.Storage, name); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// applyConfigFields copies the fields sent into e.
func applyConfigFields(e *configEntry, d *framework.FieldData) *logical.Response {
	strs := map[string]*string{
		"provider": &e.Provider, "token_url": &e.TokenURL, "auth_url": &e.AuthURL,
		"revocation_url": &e.RevocationURL, "client_id": &e.ClientID, "client_secret": &e.ClientSecret,
		"client_auth": &e.ClientAuth, "username": &e.Username, "password": &e.Password,
		"access_code": &e.AccessCode, "security_key": &e.SecurityKey, "ca_cert": &e.CACert,
		"issuer": &e.Issuer, "private_key": &e.PrivateKey, "private_key_id": &e.PrivateKeyID,
		"signing_alg": &e.SigningAlg, "tls_client_cert": &e.TLSClientCert, "tls_client_key": &e.TLSClientKey,
	}
	for field, dst := range strs {
		v, ok, resp := getString(d, field)
		if resp != nil {
			return resp
		}
		if ok {
			*dst = strings.TrimSpace(v)
		}
	}
	lists := map[string]*[]string{"scopes": &e.Scopes, "allowed_token_types": &e.AllowedTokenTypes, "redirect_uris": &e.RedirectURIs}
	for field, dst := range lists {
		v, ok, resp := getStrings(d, field)
		if resp != nil {
			return resp
		}
		if ok {
			*dst = v
		}
	}
	durations := map[string]*time.Duration{"request_timeout": &e.RequestTimeout, "default_token_ttl": &e.DefaultTokenTTL, "auth_state_ttl": &e.AuthStateTTL}
	for field, dst := range durations {
		v, ok, resp := getDuration(d, field)
		if resp != nil {
			return resp
		}
		if ok {
			*dst = v
		}
	}
	if v, ok, resp := getBool(d, "allow_insecure_http"); resp != nil {
		return resp
	} else if ok {
		e.AllowInsecureHTTP = v
	}
	return nil
}

// requireSecretsOnURLChange stops whoever may update a config from sending
// its stored secrets to a server of their choosing: moving an endpoint
// requires writing the secrets again.
func requireSecretsOnURLChange(old, e *configEntry, d *framework.FieldData) *logical.Response {
	if old == nil {
		return nil
	}
	moved := old.TokenURL != e.TokenURL || old.AuthURL != e.AuthURL || old.RevocationURL != e.RevocationURL ||
		old.DeviceAuthorizationURL != e.DeviceAuthorizationURL ||
		old.Issuer != e.Issuer || (!old.AllowInsecureHTTP && e.AllowInsecureHTTP)
	if !moved {
		return nil
	}
	// A previous credential (rotation) would be sent to the new server
	// without having been written again: forget it.
	clearPrevious(e)
	held := heldSecrets(old)
	var missing []string
	for _, f := range append(slices.Clone(secretFields), credentialSecretFields...) {
		if _, sent := d.Raw[f]; held[f] != "" && !sent {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return logical.ErrorResponse("changing an endpoint URL requires %s to be written again in the same request", strings.Join(missing, ", "))
	}
	return nil
}

func applyPresetDefaults(e *configEntry, p *backend.Provider) {
	// With an issuer, discovery gives the token URL, and an unset
	// client_auth is chosen from the server's metadata (config_credentials.go).
	if e.TokenURL == "" && e.Issuer == "" {
		e.TokenURL = p.DefaultTokenURL
	}
	if e.ClientAuth == "" && e.Issuer == "" {
		e.ClientAuth = string(p.ClientAuth)
	}
	if len(e.Scopes) == 0 {
		e.Scopes = slices.Clone(p.DefaultScopes)
	}
	if len(e.AllowedTokenTypes) == 0 {
		e.AllowedTokenTypes = []string{"Bearer"}
	}
}

func validateConfig(e *configEntry, p *backend.Provider) *logical.Response {
	texts := []struct{ field, value string }{
		{"token_url", e.TokenURL}, {"auth_url", e.AuthURL}, {"revocation_url", e.RevocationURL},
		{"client_id", e.ClientID}, {"client_secret", e.ClientSecret}, {"username", e.Username},
		{"password", e.Password}, {"access_code", e.AccessCode}, {"security_key", e.SecurityKey},
	}
	for _, t := range texts {
		if resp := checkText(t.field, t.value, maxFieldLen); resp != nil {
			return resp
		}
	}
	if resp := checkText("ca_cert", e.CACert, maxCACertLen); resp != nil {
		return resp
	}
	if e.TokenURL == "" && e.Issuer == "" {
		return fieldError("token_url", "required for provider %s (or give issuer, for discovery)", p.Name)
	}
	urls := []struct{ field, value string }{{"token_url", e.TokenURL}, {"auth_url", e.AuthURL}, {"revocation_url", e.RevocationURL}}
	for _, u := range urls {
		if u.value == "" {
			continue
		}
		if err := backend.CheckEndpointURL(u.value, e.AllowInsecureHTTP); err != nil {
			return fieldError(u.field, "%v", err)
		}
	}
	if e.ClientID == "" {
		return fieldError("client_id", "required")
	}
	if resp := validateClientCredentials(e); resp != nil {
		return resp
	}
	if p.DefaultGrant == backend.GrantPassword {
		if _, err := p.ComposeUsername(e.operator()); err != nil {
			return logical.ErrorResponse("%v", err)
		}
	}
	if resp := checkScopes("scopes", e.Scopes); resp != nil {
		return resp
	}
	if e.RequestTimeout > maxRequestTimeout {
		return fieldError("request_timeout", "must be at most %s", maxRequestTimeout)
	}
	if e.DefaultTokenTTL > backend.MaxExpiresIn {
		return fieldError("default_token_ttl", "must be at most %s", backend.MaxExpiresIn)
	}
	return validateAuthCodeConfig(e)
}

func (b *idpBackend) pathConfigDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	revoke, err := b.tokensOfConfigToRevoke(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if err := b.dropTokensOfConfig(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	if err := req.Storage.Delete(ctx, configPrefix+name); err != nil {
		return nil, err
	}
	// Best effort: a failure is logged and does not undo the delete.
	b.revokeDropped(ctx, revoke)
	b.dropConfigState(name)
	b.metrics.DropConfig(name)
	return nil, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const configHelp = `
A config is one connection to an identity provider: its token endpoint, the
OAuth2 client, and for the password grant the resource owner. provider picks a
preset that fills what the IdP's document fixes (grant, client authentication,
default token_url and scopes, error format); every default can be overridden.

Secrets (client_secret, password, security_key) are write-only: a read shows
client_secret_set and so on. An update that omits a secret keeps it, except
that changing an endpoint URL requires the secrets to be written again.

provider=google-service-account takes a service-account key file
(credentials=@key.json) for the jwt_bearer grant; client_auth=none sends no
client authentication and is for jwt_bearer and device_code roles only.
device_authorization_url is the RFC 8628 endpoint of device_code roles.
`
