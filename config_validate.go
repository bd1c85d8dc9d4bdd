package idptokens

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// request_timeout bounds a whole token request, every try and wait
// included (backend.RetryWithin); at most Vault's own default request
// timeout, so that a Vault request does not hang longer than that.
const (
	minRequestTimeout = time.Second
	maxRequestTimeout = 90 * time.Second
)

func validateConfig(e *configEntry, p *backend.Provider) *logical.Response {
	if resp := checkConfigText(e); resp != nil {
		return resp
	}
	if e.TokenURL == "" && e.Issuer == "" {
		return fieldError("token_url", "required for provider %s (or give issuer, for discovery)", p.Name)
	}
	if resp := checkEndpointFields(e); resp != nil {
		return resp
	}
	if e.ClientID == "" && p.Name == backend.ProviderGoogleServiceAccount {
		return fieldError("credentials", "required for provider %s: the service account's JSON key file (credentials=@key.json)", p.Name)
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
	if e.RequestTimeout != 0 && (e.RequestTimeout < minRequestTimeout || e.RequestTimeout > maxRequestTimeout) {
		return fieldError("request_timeout", "must be between %s and %s (it bounds a whole token request, retries included)", minRequestTimeout, maxRequestTimeout)
	}
	if e.DefaultTokenTTL > backend.MaxExpiresIn {
		return fieldError("default_token_ttl", "must be at most %s", backend.MaxExpiresIn)
	}
	return validateAuthCodeConfig(e)
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

// requireSecretsOnURLChange stops whoever may update a config from sending
// its stored secrets to a server of their choosing: moving an endpoint
// requires writing the secrets again.
func requireSecretsOnURLChange(old, e *configEntry, d *framework.FieldData) *logical.Response {
	if old == nil {
		return nil
	}
	// A new CA bundle or client certificate re-targets the secrets just as
	// a new URL does: another server can then pass for the IdP.
	if !retargeted(old, e) {
		return nil
	}
	// A previous credential (rotation) would be sent to the new server
	// without having been written again: forget it.
	clearPrevious(e)
	held := heldSecrets(old)
	var missing []string
	for _, f := range secretFields {
		if _, sent := d.Raw[f]; held[f] != "" && !sent {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		hint := ""
		if e.Provider == backend.ProviderGoogleServiceAccount && slices.Contains(missing, "private_key") {
			hint = " (credentials=@key.json writes it)"
		}
		return logical.ErrorResponse("changing an endpoint URL, ca_cert or tls_client_cert requires %s to be written again in the same request%s", strings.Join(missing, ", "), hint)
	}
	return nil
}

// checkSingleActiveClient refuses a write after which one client's token
// could be minted for two different requests, each mint killing the other's
// token: two roles of a single-active config asking differently (as when
// the config's scopes change under a role that inherits them), or a second
// config for a client that keeps one live token.
func (b *idpBackend) checkSingleActiveClient(ctx context.Context, s logical.Storage, st *configState) (*logical.Response, error) {
	if st.singleActive {
		roles, err := b.rolesOf(ctx, s, st.name)
		if err != nil {
			return nil, err
		}
		if resp := sharedTokenConflict(st, roles); resp != nil {
			return resp, nil
		}
		if renewable := rolesNamed(roles, func(r *roleEntry) bool { return r.RenewableLeases }); len(renewable) > 0 {
			return fieldError("single_active_token", "roles %s have renewable_leases, which a config that keeps one live token per client refuses "+
				"(Vault Proxy would replay a lease past the next mint); write them with renewable_leases=false first", strings.Join(renewable, ", ")), nil
		}
		callers := rolesNamed(roles, func(r *roleEntry) bool { return r.grant() == backend.GrantTokenExchange && r.SubjectRole == "" })
		if len(callers) > 0 {
			return fieldError("single_active_token", "roles %s exchange the subject tokens callers bring, and each such exchange would kill the token exchanged before it "+
				"under its lease; delete them or give them a subject_role first", strings.Join(callers, ", ")), nil
		}
		if people := rolesNamed(roles, func(r *roleEntry) bool { return r.PerEntity || r.hasTemplates() }); len(people) > 0 {
			return fieldError("single_active_token", "roles %s give each person (or templated subject) a token of their own, which one live token per client cannot be", strings.Join(people, ", ")), nil
		}
	}
	names, err := b.configsOfClient(ctx, s, st.entry)
	if err != nil {
		return nil, err
	}
	for _, other := range names {
		if other == st.name {
			continue
		}
		o, err := b.config(ctx, s, other)
		if err != nil {
			return nil, err
		}
		if o != nil && (st.singleActive || o.singleActive) && sameClient(st.entry, o.entry) {
			return fieldError("client_id", "config %q already holds client %q of this IdP, which keeps one live token per client (single_active_token): "+
				"a second config would mint tokens that kill the first's; add roles to config %q instead", other, st.entry.ClientID, other), nil
		}
	}
	return nil, nil
}

// rolesNamed are the names of the roles that match, sorted.
func rolesNamed(roles map[string]*roleEntry, match func(*roleEntry) bool) []string {
	var out []string
	for _, n := range slices.Sorted(maps.Keys(roles)) {
		if match(roles[n]) {
			out = append(out, n)
		}
	}
	return out
}

// validateClientCredentials checks client_auth against the credentials
// held, the PEM fields, and the issuer.
func validateClientCredentials(e *configEntry) *logical.Response {
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
			return fieldError("client_auth", "must be basic, post, private_key_jwt, tls_client_auth or none (jwt_bearer and device_code roles), or auto with an issuer; not %q", backend.Sanitize(e.ClientAuth, 40))
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
		if _, err := backend.NewAssertionSigner(k.pem, k.kid, k.alg); err != nil {
			return fieldError(k.field, "%v", err)
		}
	}
	if e.SigningAlg != "" && e.PrivateKey == "" && !e.GenerateKey {
		return fieldError("signing_alg", "is for private_key_jwt; write private_key too")
	}
	if (e.TLSClientCert == "") != (e.TLSClientKey == "") {
		return fieldError("tls_client_cert", "tls_client_cert and tls_client_key go together")
	}
	if e.TLSClientCert != "" {
		if _, err := backend.ParseClientCertificate(e.TLSClientCert, e.TLSClientKey, time.Now()); err != nil {
			return fieldError("tls_client_cert", "%v", err)
		}
	}
	held := e.heldCredentials()
	switch backend.ClientAuth(e.ClientAuth) {
	case backend.ClientAuthBasic, backend.ClientAuthPost:
		if !held.Secret {
			return fieldError("client_secret", "required for client_auth=%s", e.ClientAuth)
		}
	case backend.ClientAuthPrivateKeyJWT:
		if !held.Key && !e.GenerateKey {
			return fieldError("private_key", "required for client_auth=private_key_jwt (or generate_key=true)")
		}
	case backend.ClientAuthNone:
		// No client credential: jwt_bearer's assertion, or a public
		// device_code client (the roles' checks, role_fields.go).
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
