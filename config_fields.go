package idptokens

import (
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// The one table of config fields: the schema, the read, the write, the
// checks and the change rules all come from it.

// fieldKind is how a config or role field is written and read.
type fieldKind int

const (
	kindText       fieldKind = iota // a string, shown by reads
	kindSecret                      // a write-only string: reads show <name>_set
	kindPrevious                    // a rotation's previous secret: not written, reads show <name>_set
	kindList                        // a comma list
	kindScopes                      // scopes: commas or spaces
	kindDuration                    // seconds
	kindFlag                        // a bool
	kindPresetFlag                  // a bool whose unset value is the preset's
	kindKeyFile                     // a write-only file whose parts are stored in other fields
	kindFound                       // a string the engine sets (from discovery): reads show it, writes never take it
	kindPairs                       // key=value pairs
	kindJSON                        // a JSON object, written and read as text
)

// configField is everything the engine knows of one config field.
type configField struct {
	name string
	kind fieldKind
	desc string
	// endpoint: a URL the engine sends requests (and credentials) to.
	endpoint bool
	// retargets: changing it re-targets where the secrets go (an endpoint,
	// the trusted CA, the client certificate), so the secrets must be
	// written again in the same request.
	retargets bool
	// identity: it names the client or resource owner; a change is a new
	// generation, and tokens of the former identity are never served again.
	identity bool
	// maxLen bounds a string (default maxFieldLen); multiline allows the
	// line breaks of PEM text.
	maxLen    int
	multiline bool
	// def is the value a duration has when unset, which a read shows.
	def time.Duration

	str  func(*configEntry) *string
	list func(*configEntry) *[]string
	dur  func(*configEntry) *time.Duration
	flag func(*configEntry) *bool
	opt  func(*configEntry) **bool
}

var configFieldTable = []configField{
	{name: "provider", kind: kindText, identity: true, desc: "Preset: " + strings.Join(backend.ProviderNames(), ", ") + ". Default oauth2.",
		str: func(e *configEntry) *string { return &e.Provider }},
	{name: "token_url", kind: kindText, endpoint: true, retargets: true, identity: true,
		desc: "Token endpoint. Defaults to the preset's where its document gives one (mwi, microtek).",
		str:  func(e *configEntry) *string { return &e.TokenURL }},
	{name: "issuer", kind: kindText, endpoint: true, retargets: true, identity: true,
		desc: "Issuer identifier: its metadata (<issuer>/.well-known/openid-configuration, else RFC 8414 oauth-authorization-server) " +
			"gives token_url, auth_url, device_authorization_url, revocation_url and, with client_auth unset or auto, the method. " +
			"Explicit URLs win; the metadata is read at the write, then kept for 1h.",
		str: func(e *configEntry) *string { return &e.Issuer }},
	{name: "discovered_token_url", kind: kindFound,
		desc: "Read-only: the token endpoint discovered from issuer at the last write, when token_url is unset; a second config of the same client is looked for there.",
		str:  func(e *configEntry) *string { return &e.DiscoveredTokenURL }},
	{name: "auth_url", kind: kindText, endpoint: true, retargets: true, desc: "Authorization endpoint, for the authorization_code grant.",
		str: func(e *configEntry) *string { return &e.AuthURL }},
	{name: "device_authorization_url", kind: kindText, endpoint: true, retargets: true,
		desc: "RFC 8628 device authorization endpoint, for the device_code grant. Default: discovered (device_authorization_endpoint) with issuer.",
		str:  func(e *configEntry) *string { return &e.DeviceAuthorizationURL }},
	{name: "revocation_url", kind: kindText, endpoint: true, retargets: true, desc: "RFC 7009 revocation endpoint (optional).",
		str: func(e *configEntry) *string { return &e.RevocationURL }},
	{name: "jwks_url", kind: kindText, endpoint: true, retargets: true,
		desc: "The IdP's JWK Set, against which the ID tokens of bound_subject logins are verified. Default: discovered (jwks_uri) with issuer.",
		str:  func(e *configEntry) *string { return &e.JWKSURL }},
	{name: "client_id", kind: kindText, identity: true, desc: "OAuth2 client_id.",
		str: func(e *configEntry) *string { return &e.ClientID }},
	{name: "client_secret", kind: kindSecret, desc: "OAuth2 client_secret. Required by client_auth basic and post.",
		str: func(e *configEntry) *string { return &e.ClientSecret }},
	{name: "client_auth", kind: kindText,
		desc: "How the client authenticates: basic (HTTP Basic header), post (form body), private_key_jwt, tls_client_auth, " +
			"none (no client authentication: jwt_bearer and device_code roles only), or auto (with an issuer: the strongest method the server advertises). Default from the preset.",
		str: func(e *configEntry) *string { return &e.ClientAuth }},
	{name: "private_key", kind: kindSecret, multiline: true, maxLen: maxKeyPEMLen,
		desc: "PEM private key (RSA 2048+ or EC P-256) for client_auth=private_key_jwt.",
		str:  func(e *configEntry) *string { return &e.PrivateKey }},
	{name: "private_key_id", kind: kindText, desc: "kid header of the client assertions (the key's id in the JWKS registered at the IdP).",
		str: func(e *configEntry) *string { return &e.PrivateKeyID }},
	{name: "signing_alg", kind: kindText, desc: "JWS algorithm of the client assertions: RS256, PS256 or ES256. Default from the key: RS256 for RSA, ES256 for EC. " +
		"With generate_key: ES256 (default), RS256, PS256 or EdDSA, the kind of key made.",
		str: func(e *configEntry) *string { return &e.SigningAlg }},
	{name: "generate_key", kind: kindFlag,
		desc: "Make the private_key_jwt (and jwt_bearer) key in Vault: it is stored seal-wrapped, never returned, rotated by key_rotation_period or rotate-key, " +
			"and its public half is published at <mount>/jwks/<name> (kid: its RFC 7638 thumbprint). Not with a pasted private_key. Default false.",
		flag: func(e *configEntry) *bool { return &e.GenerateKey }},
	{name: "key_rotation_period", kind: kindDuration, desc: "How long a generated key signs before the next one takes over (at least key_publish_lead). 0: rotate only with rotate-key. Default 0.",
		dur: func(e *configEntry) *time.Duration { return &e.KeyRotationPeriod }},
	{name: "key_publish_lead", kind: kindDuration, def: defaultKeyPublishLead,
		desc: "How long a new generated key is published before it signs (75s to 87600h; the JWKS max-age is a fifth of it, at most 5m). Default 1h.",
		dur:  func(e *configEntry) *time.Duration { return &e.KeyPublishLead }},
	{name: "key_overlap", kind: kindDuration, def: defaultKeyOverlap, desc: "How long a generated key stays published after it stops signing (1m to 87600h, at most key_rotation_period when that is set). Default 1h.",
		dur: func(e *configEntry) *time.Duration { return &e.KeyOverlap }},
	{name: "previous_client_auth", kind: kindFound,
		desc: "Read-only: the method of the previous client secret kept by a move to generated keys (tried once when the IdP refuses the assertion, until rotate clear_previous=true).",
		str:  func(e *configEntry) *string { return &e.PreviousClientAuth }},
	{name: "tls_client_cert", kind: kindText, retargets: true, multiline: true, maxLen: maxCertPEMLen,
		desc: "PEM client certificate (leaf first) for client_auth=tls_client_auth (RFC 8705).",
		str:  func(e *configEntry) *string { return &e.TLSClientCert }},
	{name: "tls_client_key", kind: kindSecret, multiline: true, maxLen: maxKeyPEMLen, desc: "PEM private key of tls_client_cert.",
		str: func(e *configEntry) *string { return &e.TLSClientKey }},
	{name: "credentials", kind: kindKeyFile,
		desc: "Google service-account JSON key file (provider google-service-account): sets client_id (client_email), private_key, private_key_id and, " +
			"unless token_url is given, token_url (token_uri). Give it as credentials=@key.json."},
	{name: "previous_client_secret", kind: kindPrevious,
		desc: "The client_secret before the last rotation: tried once when the IdP refuses the current one with invalid_client.",
		str:  func(e *configEntry) *string { return &e.PreviousClientSecret }},
	{name: "previous_private_key", kind: kindPrevious, multiline: true, maxLen: maxKeyPEMLen,
		desc: "The private_key before the last rotation: tried once when the IdP refuses the current one with invalid_client.",
		str:  func(e *configEntry) *string { return &e.PreviousPrivateKey }},
	{name: "username", kind: kindText, identity: true, desc: "Resource owner's username, for the password grant (MWI: the LBS operator's username).",
		str: func(e *configEntry) *string { return &e.Username }},
	{name: "password", kind: kindSecret, desc: "Resource owner's password, for the password grant.",
		str: func(e *configEntry) *string { return &e.Password }},
	{name: "access_code", kind: kindText, identity: true, desc: "MWI LBS operator's access code.",
		str: func(e *configEntry) *string { return &e.AccessCode }},
	{name: "security_key", kind: kindSecret, identity: true, desc: "MWI LBS operator's security key.",
		str: func(e *configEntry) *string { return &e.SecurityKey }},
	{name: "scopes", kind: kindScopes, desc: "Default scopes of roles that name none (MWI: the api_id), separated by commas or spaces.",
		list: func(e *configEntry) *[]string { return &e.Scopes }},
	{name: "request_timeout", kind: kindDuration, def: backend.DefaultRequestTimeout, desc: "Bound of a whole token request to the IdP, every try and retry wait included (1s to 90s). Default 20s.",
		dur: func(e *configEntry) *time.Duration { return &e.RequestTimeout }},
	{name: "single_active_token", kind: kindPresetFlag,
		desc: "The IdP keeps one live token per client: a new token invalidates the old one (MicroTek). All roles then share one token, " +
			"minted only once every lease of the current one has ended. Default from the preset (true for microtek).",
		opt: func(e *configEntry) **bool { return &e.SingleActiveToken }},
	{name: "ca_cert", kind: kindText, retargets: true, multiline: true, maxLen: maxCACertLen, desc: "PEM CA bundle to trust for the IdP, for private CAs.",
		str: func(e *configEntry) *string { return &e.CACert }},
	{name: "default_token_ttl", kind: kindDuration, desc: "Lifetime assumed when the IdP omits expires_in and the access token is not a JWT with an exp claim; also the cap on a lifetime taken from exp. " +
		"Without it, a response with neither is an error.",
		dur: func(e *configEntry) *time.Duration { return &e.DefaultTokenTTL }},
	{name: "allowed_token_types", kind: kindList, desc: "token_type values accepted from the IdP. Default Bearer; token exchanges also accept N_A (RFC 8693).",
		list: func(e *configEntry) *[]string { return &e.AllowedTokenTypes }},
	{name: "allow_insecure_http", kind: kindFlag, desc: "Allow http:// endpoints on non-loopback hosts (credentials then travel in clear). Default false.",
		flag: func(e *configEntry) *bool { return &e.AllowInsecureHTTP }},
	{name: "redirect_uris", kind: kindList, desc: "Redirect URIs auth-url may use (authorization_code); the first is the default. Normally https://<vault>/v1/<mount>/callback.",
		list: func(e *configEntry) *[]string { return &e.RedirectURIs }},
	{name: "auth_state_ttl", kind: kindDuration, def: defaultAuthStateTTL, desc: "How long a login begun with auth-url may take. Default 10m.",
		dur: func(e *configEntry) *time.Duration { return &e.AuthStateTTL }},
}

// lookupConfigField is the table's entry of that name.
func lookupConfigField(name string) configField {
	for _, f := range configFieldTable {
		if f.name == name {
			return f
		}
	}
	panic("no config field " + name)
}

// configFields is the config path's schema.
func configFields() map[string]*framework.FieldSchema {
	fields := map[string]*framework.FieldSchema{
		"name": {Type: framework.TypeString, Description: "Name of the connection."},
	}
	for _, f := range configFieldTable {
		if s := f.schema(); s != nil {
			fields[f.name] = s
		}
	}
	return fields
}

func (f configField) schema() *framework.FieldSchema {
	switch f.kind {
	case kindText:
		return &framework.FieldSchema{Type: framework.TypeString, Description: f.desc}
	case kindSecret, kindKeyFile:
		return &framework.FieldSchema{Type: framework.TypeString, Description: f.desc + " Write-only.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}}
	case kindList, kindScopes:
		return &framework.FieldSchema{Type: framework.TypeCommaStringSlice, Description: f.desc}
	case kindDuration:
		return &framework.FieldSchema{Type: framework.TypeDurationSecond, Description: f.desc}
	case kindFlag, kindPresetFlag:
		return &framework.FieldSchema{Type: framework.TypeBool, Description: f.desc}
	}
	return nil // kindPrevious: written by rotation only; kindFound: by the engine
}

// secretFields are the write-only fields a config write takes.
var secretFields = configFieldNames(func(f configField) bool { return f.kind == kindSecret })

func configFieldNames(keep func(configField) bool) []string {
	var out []string
	for _, f := range configFieldTable {
		if keep(f) {
			out = append(out, f.name)
		}
	}
	return out
}

// readData is a config as a read shows it: every field but the secrets,
// which show as <name>_set.
func readData(e *configEntry) map[string]any {
	data := map[string]any{}
	for _, f := range configFieldTable {
		switch f.kind {
		case kindText, kindFound:
			data[f.name] = *f.str(e)
		case kindSecret, kindPrevious:
			data[f.name+"_set"] = *f.str(e) != ""
		case kindList, kindScopes:
			data[f.name] = nonNil(*f.list(e))
		case kindDuration:
			d := *f.dur(e)
			if d == 0 {
				d = f.def
			}
			data[f.name] = int64(d.Seconds())
		case kindFlag:
			data[f.name] = *f.flag(e)
		case kindPresetFlag:
			data[f.name] = e.singleActive(providerOrDefault(e.Provider))
		}
	}
	if e.ClientAuth == "" && e.Issuer != "" {
		data["client_auth"] = clientAuthAuto
	}
	return data
}

// configReadSchema is what readData answers, for the OpenAPI document.
func configReadSchema() map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{}
	for _, f := range configFieldTable {
		switch f.kind {
		case kindText, kindFound:
			out[f.name] = respString(f.desc)
		case kindSecret, kindPrevious:
			out[f.name+"_set"] = respBool("Whether a " + strings.ReplaceAll(f.name, "_", " ") + " is held.")
		case kindList, kindScopes:
			out[f.name] = respList(f.desc)
		case kindDuration:
			if f.def > 0 {
				out[f.name] = respSeconds(strings.TrimSuffix(f.desc, ".")) // a read shows the default in force
			} else {
				out[f.name] = respSecondsOrUnset(strings.TrimSuffix(f.desc, "."))
			}
		case kindFlag, kindPresetFlag:
			out[f.name] = respBool(f.desc)
		}
	}
	return out
}

// applyConfigFields copies the fields a write sent into e.
func applyConfigFields(e *configEntry, d *framework.FieldData) *logical.Response {
	r := fieldReader{d: d}
	for _, f := range configFieldTable {
		switch f.kind {
		case kindText, kindSecret:
			r.text(f.name, f.str(e))
		case kindList:
			r.list(f.name, f.list(e))
		case kindScopes:
			r.scopes(f.name, f.list(e))
		case kindDuration:
			r.duration(f.name, f.dur(e))
		case kindFlag:
			r.flag(f.name, f.flag(e))
		case kindPresetFlag:
			var v bool
			if r.flag(f.name, &v) {
				*f.opt(e) = &v
			}
		}
	}
	return r.err
}

// checkConfigText refuses over-long values and control characters in every
// string field a user writes (discovery checks what it finds).
func checkConfigText(e *configEntry) *logical.Response {
	for _, f := range configFieldTable {
		if f.str == nil || f.kind == kindFound {
			continue
		}
		limit := f.maxLen
		if limit == 0 {
			limit = maxFieldLen
		}
		if resp := checkText(f.name, *f.str(e), limit, f.multiline); resp != nil {
			return resp
		}
	}
	return nil
}

// checkEndpointFields checks each endpoint URL, naming its field.
func checkEndpointFields(e *configEntry) *logical.Response {
	for _, f := range configFieldTable {
		if !f.endpoint || *f.str(e) == "" {
			continue
		}
		u := *f.str(e)
		if resp := checkText(f.name, u, maxFieldLen, false); resp != nil {
			return resp
		}
		if err := backend.CheckEndpointURL(u, e.AllowInsecureHTTP); err != nil {
			return fieldError(f.name, "%v", err)
		}
	}
	return nil
}

// identityChanged says whether b names another client or resource owner
// than a: tokens minted for a must not be served for b.
func identityChanged(a, b *configEntry) bool {
	for _, f := range configFieldTable {
		if f.identity && *f.str(a) != *f.str(b) {
			return true
		}
	}
	return false
}

// retargeted says whether e sends the secrets elsewhere than old did: a
// field that retargets changed, or plain http was newly allowed.
func retargeted(old, e *configEntry) bool {
	for _, f := range configFieldTable {
		if f.retargets && *f.str(old) != *f.str(e) {
			return true
		}
	}
	return !old.AllowInsecureHTTP && e.AllowInsecureHTTP
}

// heldSecrets is every write-only value of a config, by field name.
func heldSecrets(e *configEntry) map[string]string {
	out := map[string]string{}
	for _, f := range configFieldTable {
		if f.kind == kindSecret {
			out[f.name] = *f.str(e)
		}
	}
	return out
}

// hostOutside returns the first endpoint field whose host is not allowed.
func hostOutside(e *configEntry, allowed []string) (field, host string) {
	if len(allowed) == 0 {
		return "", ""
	}
	for _, f := range configFieldTable {
		if !f.endpoint || *f.str(e) == "" {
			continue
		}
		if h := backend.URLHost(*f.str(e)); !backend.HostAllowed(h, allowed) {
			return f.name, h
		}
	}
	return "", ""
}
