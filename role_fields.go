// The role's fields, in one table, and the checks of the fields that only
// some grants use: jwt_bearer (RFC 7523 2.1), token_exchange (RFC 8693),
// authorization_code.

package idptokens

import (
	"encoding/json"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// roleGrantFields is the part of a stored role that only some grants use.
type roleGrantFields struct {
	// jwt_bearer: the assertion's iss (default the config's client_id), sub,
	// aud (default the token endpoint) and further claims.
	JWTIssuer   string         `json:"jwt_issuer,omitempty"`
	JWTSubject  string         `json:"jwt_subject,omitempty"`
	JWTAudience string         `json:"jwt_audience,omitempty"`
	JWTClaims   map[string]any `json:"jwt_claims,omitempty"`
	// token_exchange (RFC 8693): the subject token's type, what to ask for,
	// and where the subject and actor tokens come from (grant_exchange.go).
	SubjectTokenType   string   `json:"subject_token_type,omitempty"`
	RequestedTokenType string   `json:"requested_token_type,omitempty"`
	Audience           []string `json:"audience,omitempty"`
	Resource           []string `json:"resource,omitempty"`
	SubjectRole        string   `json:"subject_role,omitempty"`
	ActorRole          string   `json:"actor_role,omitempty"`
	// ExchangeCacheTTL bounds the reuse of an exchange of a caller's subject
	// token whose own life cannot be read (not a JWT with exp).
	ExchangeCacheTTL time.Duration `json:"exchange_cache_ttl,omitempty"`
}

// isZero says the role sets none of the grant fields (so its fingerprint
// stays what it was before they existed).
func (g *roleGrantFields) isZero() bool { return reflect.ValueOf(*g).IsZero() }

// Bounds of exchange_cache_ttl.
const (
	defaultExchangeCacheTTL = time.Minute
	maxExchangeCacheTTL     = time.Hour
)

// exchangeReuse is how long the role reuses an exchange of a subject token
// whose expiry cannot be read.
func (g *roleGrantFields) exchangeReuse() time.Duration {
	if g.ExchangeCacheTTL > 0 {
		return g.ExchangeCacheTTL
	}
	return defaultExchangeCacheTTL
}

// roleField is everything the engine knows of one role field. Exactly one
// accessor is set, the one of its kind.
type roleField struct {
	name string
	kind fieldKind
	desc string
	// grant owns the field; "" for a field of every grant. A role of
	// another grant that sets it is refused, naming the field.
	grant backend.GrantType

	str   func(*roleEntry) *string
	list  func(*roleEntry) *[]string
	dur   func(*roleEntry) *time.Duration
	flag  func(*roleEntry) *bool
	pairs func(*roleEntry) *map[string]string
	json  func(*roleEntry) *map[string]any
}

// The one table of role fields: the role path's schema, the read and its
// schema, the write, and which grant owns a field all come from it.
var roleFieldTable = []roleField{
	{name: "config", kind: kindText, desc: "Config (IdP connection) the role uses. Required.",
		str: func(r *roleEntry) *string { return &r.Config }},
	{name: "grant_type", kind: kindText, desc: "client_credentials, password, authorization_code, jwt_bearer, token_exchange or device_code. Default from the config's preset.",
		str: func(r *roleEntry) *string { return &r.GrantType }},
	{name: "scopes", kind: kindScopes, desc: "Scopes to ask for (MWI: the api_id), separated by commas or spaces. Default the config's.",
		list: func(r *roleEntry) *[]string { return &r.Scopes }},
	{name: "extra_params", kind: kindPairs, desc: "Extra form fields for the token request, such as audience=api://x,resource=https://y. Fields the engine sets (client_secret, scope, ...) are refused.",
		pairs: func(r *roleEntry) *map[string]string { return &r.ExtraParams }},
	{name: "ttl", kind: kindDuration, desc: "Cap on the lease of a creds read. Default: the token's remaining life.",
		dur: func(r *roleEntry) *time.Duration { return &r.TTL }},
	{name: "max_ttl", kind: kindDuration, desc: "Cap on the lease and its max TTL. Default: the mount's max.",
		dur: func(r *roleEntry) *time.Duration { return &r.MaxTTL }},
	{name: "min_ttl", kind: kindDuration, desc: "A cached token is handed out only while it has at least this long left, or its margin when larger (a fifth of its lifetime, 2 s to 5 min; capped at half its lifetime). " +
		"With single_active_token, the shared token is replaced when it has the largest min_ttl of the config's roles left, and leases end before that.",
		dur: func(r *roleEntry) *time.Duration { return &r.MinTTL }},
	{name: "renewable_leases", kind: kindFlag, desc: "Make creds leases renewable (never past the time the token may be relied on), so that Vault Proxy and Agent's API proxy cache them: " +
		"one lease per token life. A renewal grants nothing once the role holds another token. Not on a single_active_token config. Default false.",
		flag: func(r *roleEntry) *bool { return &r.RenewableLeases }},
	{name: "per_entity", kind: kindFlag, desc: "authorization_code and device_code: each Vault entity logs in for, and reads, its own token (keyed by the request's entity, " +
		"never by a name the caller picks), so no caller can read another's whatever their policy. Default false.",
		flag: func(r *roleEntry) *bool { return &r.PerEntity }},
	{name: "bound_subject", kind: kindText, desc: "per_entity: a template of the caller's entity (e.g. {{identity.entity.aliases.<mount accessor>.name}} or " +
		"{{identity.entity.metadata.email}}) that the login's ID token claim bound_subject_claim must equal; the ID token is verified " +
		"(signature against the issuer's JWKS or jwks_url, iss, aud, exp, the login's nonce) and a login for anyone else stores nothing. Needs the openid scope.",
		str: func(r *roleEntry) *string { return &r.BoundSubject }},
	{name: "bound_subject_claim", kind: kindText, desc: "per_entity with bound_subject: the ID token claim compared. Default sub.",
		str: func(r *roleEntry) *string { return &r.BoundSubjectClaim }},
	{name: "login_idle_ttl", kind: kindDuration, desc: "per_entity: a person's token that holds a refresh token is forgotten after this long without a read " +
		"(one without a refresh token once it expires). Default 720h (30 days), 1m to 8760h.",
		dur: func(r *roleEntry) *time.Duration { return &r.LoginIdleTTL }},
	{name: "prompt", kind: kindList, grant: backend.GrantAuthorizationCode,
		desc: "OIDC prompt values of the login URL: login (the IdP always asks the person to log in, even with an SSO session), consent, select_account.",
		list: func(r *roleEntry) *[]string { return &r.Prompt }},
	{name: "jwt_issuer", kind: kindText, grant: backend.GrantJWTBearer, desc: "iss claim of the assertion. Default the config's client_id.",
		str: func(r *roleEntry) *string { return &r.JWTIssuer }},
	{name: "jwt_subject", kind: kindText, grant: backend.GrantJWTBearer,
		desc: "sub claim of the assertion (the principal the token is for; with Google, the user to impersonate by domain-wide delegation). Default none.",
		str:  func(r *roleEntry) *string { return &r.JWTSubject }},
	{name: "jwt_audience", kind: kindText, grant: backend.GrantJWTBearer, desc: "aud claim of the assertion. Default the token endpoint URL.",
		str: func(r *roleEntry) *string { return &r.JWTAudience }},
	{name: "jwt_claims", kind: kindJSON, grant: backend.GrantJWTBearer,
		desc: `further claims of the assertion, as a JSON object (e.g. {"scope":"a b"}); iss, sub, aud, exp, iat and jti are set by the engine, and nbf may not be given.`,
		json: func(r *roleEntry) *map[string]any { return &r.JWTClaims }},
	{name: "subject_token_type", kind: kindText, grant: backend.GrantTokenExchange,
		desc: "subject_token_type sent. Default urn:ietf:params:oauth:token-type:access_token.",
		str:  func(r *roleEntry) *string { return &r.SubjectTokenType }},
	{name: "requested_token_type", kind: kindText, grant: backend.GrantTokenExchange,
		desc: "requested_token_type sent (a token type URN). Default none (the server's choice).",
		str:  func(r *roleEntry) *string { return &r.RequestedTokenType }},
	{name: "audience", kind: kindList, grant: backend.GrantTokenExchange,
		desc: "audience values (logical names of the target services), each sent as an audience parameter.",
		list: func(r *roleEntry) *[]string { return &r.Audience }},
	{name: "resource", kind: kindList, grant: backend.GrantTokenExchange, desc: "resource URIs (absolute, no fragment), each sent as a resource parameter.",
		list: func(r *roleEntry) *[]string { return &r.Resource }},
	{name: "subject_role", kind: kindText, grant: backend.GrantTokenExchange,
		desc: "the role whose current token is the subject token; creds/<role> then works like any role. Without it, callers bring the subject token to exchange/<role>.",
		str:  func(r *roleEntry) *string { return &r.SubjectRole }},
	{name: "actor_role", kind: kindText, grant: backend.GrantTokenExchange, desc: "the role whose current token is sent as actor_token (delegation). Default none.",
		str: func(r *roleEntry) *string { return &r.ActorRole }},
	{name: "exchange_cache_ttl", kind: kindDuration, grant: backend.GrantTokenExchange,
		desc: "without subject_role: how long an exchange of a caller's subject token is reused when the subject's own expiry cannot be read " +
			"(it is not a JWT with an exp claim); a JWT subject's exchange is reused until its exp. Default 60s, at most 1h.",
		dur: func(r *roleEntry) *time.Duration { return &r.ExchangeCacheTTL }},
}

// description is the field's text, led by the grant that owns it.
func (f roleField) description() string {
	if f.grant != "" {
		return string(f.grant) + ": " + f.desc
	}
	return f.desc
}

// roleFields is the role path's schema.
func roleFields() map[string]*framework.FieldSchema {
	fields := map[string]*framework.FieldSchema{"name": {Type: framework.TypeString, Description: "Name of the role."}}
	types := map[fieldKind]framework.FieldType{kindText: framework.TypeString, kindJSON: framework.TypeString, kindList: framework.TypeCommaStringSlice,
		kindScopes: framework.TypeCommaStringSlice, kindDuration: framework.TypeDurationSecond, kindFlag: framework.TypeBool, kindPairs: framework.TypeKVPairs}
	for _, f := range roleFieldTable {
		fields[f.name] = &framework.FieldSchema{Type: types[f.kind], Description: f.description()}
	}
	return fields
}

// roleReadData is a role as a read shows it: every field, unset ones empty.
func roleReadData(r *roleEntry) map[string]any {
	data := map[string]any{}
	for _, f := range roleFieldTable {
		switch f.kind {
		case kindText:
			data[f.name] = *f.str(r)
		case kindList, kindScopes:
			data[f.name] = nonNil(*f.list(r))
		case kindDuration:
			data[f.name] = int64(f.dur(r).Seconds())
		case kindFlag:
			data[f.name] = *f.flag(r)
		case kindPairs:
			v := *f.pairs(r)
			if v == nil {
				v = map[string]string{}
			}
			data[f.name] = v
		case kindJSON:
			raw := []byte("{}")
			if v := *f.json(r); len(v) > 0 {
				raw, _ = json.Marshal(v)
			}
			data[f.name] = string(raw)
		}
	}
	return data
}

// roleReadSchema is what roleReadData answers, for the OpenAPI document.
func roleReadSchema() map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{}
	for _, f := range roleFieldTable {
		desc := f.description()
		switch f.kind {
		case kindText, kindJSON:
			out[f.name] = respString(desc)
		case kindList, kindScopes:
			out[f.name] = respList(desc)
		case kindDuration:
			out[f.name] = respSecondsOrUnset(strings.TrimSuffix(desc, "."))
		case kindFlag:
			out[f.name] = respBool(desc)
		case kindPairs:
			out[f.name] = &framework.FieldSchema{Type: framework.TypeKVPairs, Description: desc, Required: true}
		}
	}
	return out
}

// applyRoleFields copies the fields a write sent into r, refusing
// over-long values and control characters naming the field.
func applyRoleFields(r *roleEntry, d *framework.FieldData) *logical.Response {
	f := fieldReader{d: d}
	for _, rf := range roleFieldTable {
		switch rf.kind {
		case kindText:
			if f.text(rf.name, rf.str(r)) {
				if resp := checkText(rf.name, *rf.str(r), maxFieldLen, false); resp != nil {
					return resp
				}
			}
		case kindList:
			if f.list(rf.name, rf.list(r)) {
				for _, v := range *rf.list(r) {
					if resp := checkText(rf.name, v, maxFieldLen, false); resp != nil {
						return resp
					}
				}
			}
		case kindScopes:
			f.scopes(rf.name, rf.list(r))
		case kindDuration:
			f.duration(rf.name, rf.dur(r))
		case kindFlag:
			f.flag(rf.name, rf.flag(r))
		case kindPairs:
			f.pairs(rf.name, rf.pairs(r))
		case kindJSON:
			var raw string
			if f.text(rf.name, &raw) {
				claims, resp := parseJWTClaims(raw)
				if resp != nil {
					return resp
				}
				*rf.json(r) = claims
			}
		}
		if f.err != nil {
			return f.err
		}
	}
	return nil
}

// fieldOfOtherGrant is the first field the role sets that another grant
// owns, if any.
func fieldOfOtherGrant(r *roleEntry) (roleField, bool) {
	grant := r.grant()
	for _, f := range roleFieldTable {
		if f.grant == "" || f.grant == grant {
			continue
		}
		set := false
		switch f.kind {
		case kindText:
			set = *f.str(r) != ""
		case kindList, kindScopes:
			set = len(*f.list(r)) > 0
		case kindDuration:
			set = *f.dur(r) > 0
		case kindJSON:
			set = len(*f.json(r)) > 0
		}
		if set {
			return f, true
		}
	}
	return roleField{}, false
}

// parseJWTClaims reads jwt_claims: a JSON object without the claims the
// engine sets. "" clears it.
func parseJWTClaims(v string) (map[string]any, *logical.Response) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	if len(v) > maxFieldLen {
		return nil, fieldError("jwt_claims", "longer than %d bytes", maxFieldLen)
	}
	var claims map[string]any
	if err := json.Unmarshal([]byte(v), &claims); err != nil || claims == nil {
		return nil, fieldError("jwt_claims", "must be a JSON object, such as {\"scope\":\"a b\"}")
	}
	for k := range claims {
		if slices.Contains(backend.RegisteredClaims, k) {
			return nil, fieldError("jwt_claims", "%q is set by the engine and cannot be overridden (use jwt_issuer, jwt_subject or jwt_audience)", k)
		}
	}
	if len(claims) == 0 {
		return nil, nil
	}
	return claims, nil
}

// validateRoleGrant checks the grant fields against the role's grant, and
// what each grant needs of the config.
func validateRoleGrant(r *roleEntry, cfg *configState) *logical.Response {
	grant := r.grant()
	if f, ok := fieldOfOtherGrant(r); ok {
		return fieldError(f.name, "is for grant_type=%s, and the role's grant_type is %s (write %s= to clear it)", f.grant, grant, f.name)
	}
	if backend.ClientAuth(cfg.entry.ClientAuth) == backend.ClientAuthNone && grant != backend.GrantJWTBearer && grant != backend.GrantDeviceCode {
		return fieldError("grant_type", "config %q has client_auth=none, which only grant_type=jwt_bearer and device_code can use", r.Config)
	}
	if grant == backend.GrantDeviceCode && cfg.entry.DeviceAuthorizationURL == "" && cfg.entry.Issuer == "" {
		return fieldError("grant_type", "device_code needs config %q to have a device_authorization_url (or an issuer whose metadata has a device_authorization_endpoint)", r.Config)
	}
	for _, res := range r.Resource {
		// RFC 8707 2: an absolute URI without a fragment.
		if u, err := url.Parse(res); err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(res, "#") {
			return fieldError("resource", "%q is not an absolute URI without a fragment", backend.Sanitize(res, 80))
		}
	}
	for field, v := range map[string]string{"subject_token_type": r.SubjectTokenType, "requested_token_type": r.RequestedTokenType} {
		// RFC 8693 3: token type identifiers are absolute URIs.
		if u, err := url.Parse(v); v != "" && (err != nil || !u.IsAbs() || strings.ContainsAny(v, " \t")) {
			return fieldError(field, "%q is not a token type URI, such as urn:ietf:params:oauth:token-type:access_token", backend.Sanitize(v, 80))
		}
	}
	if grant == backend.GrantTokenExchange && r.SubjectRole == "" {
		if cfg.singleActive {
			return fieldError("subject_role", "config %q keeps one live token per client (single_active_token): an exchange of each caller's subject token "+
				"would mint a token that kills the one exchanged before it, under its lease; name a subject_role, or use a config without single_active_token", r.Config)
		}
		if r.ExchangeCacheTTL > maxExchangeCacheTTL {
			return fieldError("exchange_cache_ttl", "must be at most %s", maxExchangeCacheTTL)
		}
	} else if r.ExchangeCacheTTL > 0 {
		return fieldError("exchange_cache_ttl", "is for token_exchange roles whose callers bring the subject token (no subject_role)")
	}
	if grant == backend.GrantJWTBearer && cfg.entry.PrivateKey == "" && !cfg.entry.GenerateKey {
		return fieldError("grant_type", "jwt_bearer signs its assertion with the config's private_key (or a key made with generate_key), and config %q has none", r.Config)
	}
	return nil
}

// roleGrantNames lists the grants a role may name, for messages.
func roleGrantNames() string {
	names := make([]string, len(backend.RoleGrants))
	for i, g := range backend.RoleGrants {
		names[i] = string(g)
	}
	return strings.Join(names, ", ")
}
