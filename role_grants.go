// Role fields of the extension grants: jwt_bearer (RFC 7523 2.1), and
// their checks. Each field belongs to one grant; a role of another grant
// that sets it is refused with a 400 naming the field.

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

// roleGrantField is one grant field: its schema and the grant it belongs to.
type roleGrantField struct {
	grant  backend.GrantType
	schema *framework.FieldSchema
	// set says the stored role has the field.
	set func(*roleGrantFields) bool
}

var roleGrantFieldDefs = map[string]roleGrantField{
	"jwt_issuer": {backend.GrantJWTBearer, &framework.FieldSchema{Type: framework.TypeString,
		Description: "jwt_bearer: iss claim of the assertion. Default the config's client_id."},
		func(g *roleGrantFields) bool { return g.JWTIssuer != "" }},
	"jwt_subject": {backend.GrantJWTBearer, &framework.FieldSchema{Type: framework.TypeString,
		Description: "jwt_bearer: sub claim of the assertion (the principal the token is for; with Google, the user to impersonate by domain-wide delegation). Default none."},
		func(g *roleGrantFields) bool { return g.JWTSubject != "" }},
	"jwt_audience": {backend.GrantJWTBearer, &framework.FieldSchema{Type: framework.TypeString,
		Description: "jwt_bearer: aud claim of the assertion. Default the token endpoint URL."},
		func(g *roleGrantFields) bool { return g.JWTAudience != "" }},
	"jwt_claims": {backend.GrantJWTBearer, &framework.FieldSchema{Type: framework.TypeString,
		Description: `jwt_bearer: further claims of the assertion, as a JSON object (e.g. {"scope":"a b"}); iss, sub, aud, exp, iat and jti are set by the engine, and nbf may not be given.`},
		func(g *roleGrantFields) bool { return len(g.JWTClaims) > 0 }},
	"subject_token_type": {backend.GrantTokenExchange, &framework.FieldSchema{Type: framework.TypeString,
		Description: "token_exchange: subject_token_type sent. Default urn:ietf:params:oauth:token-type:access_token."},
		func(g *roleGrantFields) bool { return g.SubjectTokenType != "" }},
	"requested_token_type": {backend.GrantTokenExchange, &framework.FieldSchema{Type: framework.TypeString,
		Description: "token_exchange: requested_token_type sent (a token type URN). Default none (the server's choice)."},
		func(g *roleGrantFields) bool { return g.RequestedTokenType != "" }},
	"audience": {backend.GrantTokenExchange, &framework.FieldSchema{Type: framework.TypeCommaStringSlice,
		Description: "token_exchange: audience values (logical names of the target services), each sent as an audience parameter."},
		func(g *roleGrantFields) bool { return len(g.Audience) > 0 }},
	"resource": {backend.GrantTokenExchange, &framework.FieldSchema{Type: framework.TypeCommaStringSlice,
		Description: "token_exchange: resource URIs (absolute, no fragment), each sent as a resource parameter."},
		func(g *roleGrantFields) bool { return len(g.Resource) > 0 }},
	"subject_role": {backend.GrantTokenExchange, &framework.FieldSchema{Type: framework.TypeString,
		Description: "token_exchange: the role whose current token is the subject token; creds/<role> then works like any role. Without it, callers bring the subject token to exchange/<role>."},
		func(g *roleGrantFields) bool { return g.SubjectRole != "" }},
	"actor_role": {backend.GrantTokenExchange, &framework.FieldSchema{Type: framework.TypeString,
		Description: "token_exchange: the role whose current token is sent as actor_token (delegation). Default none."},
		func(g *roleGrantFields) bool { return g.ActorRole != "" }},
	"exchange_cache_ttl": {backend.GrantTokenExchange, &framework.FieldSchema{Type: framework.TypeDurationSecond,
		Description: "token_exchange without subject_role: how long an exchange of a caller's subject token is reused when the subject's own expiry cannot be read (it is not a JWT with an exp claim); a JWT subject's exchange is reused until its exp. Default 60s, at most 1h."},
		func(g *roleGrantFields) bool { return g.ExchangeCacheTTL > 0 }},
}

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

// withRoleGrantFields adds the grant fields to the role path's schema.
func withRoleGrantFields(fields map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	for k, f := range roleGrantFieldDefs {
		fields[k] = f.schema
	}
	return fields
}

// applyRoleGrantFields copies the grant fields sent into r.
func applyRoleGrantFields(r *roleEntry, d *framework.FieldData) *logical.Response {
	g := &r.roleGrantFields
	f := fieldReader{d: d}
	texts := map[string]*string{"jwt_issuer": &g.JWTIssuer, "jwt_subject": &g.JWTSubject, "jwt_audience": &g.JWTAudience,
		"subject_token_type": &g.SubjectTokenType, "requested_token_type": &g.RequestedTokenType,
		"subject_role": &g.SubjectRole, "actor_role": &g.ActorRole}
	for field, dst := range texts {
		if f.text(field, dst) {
			if resp := checkText(field, *dst, maxFieldLen, false); resp != nil {
				return resp
			}
		}
	}
	for field, dst := range map[string]*[]string{"audience": &g.Audience, "resource": &g.Resource} {
		if f.list(field, dst) {
			for _, s := range *dst {
				if resp := checkText(field, s, maxFieldLen, false); resp != nil {
					return resp
				}
			}
		}
	}
	f.duration("exchange_cache_ttl", &g.ExchangeCacheTTL)
	if f.err != nil {
		return f.err
	}
	var claimsJSON string
	if f.text("jwt_claims", &claimsJSON) {
		claims, resp := parseJWTClaims(claimsJSON)
		if resp != nil {
			return resp
		}
		g.JWTClaims = claims
	}
	return nil
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
	names := make([]string, 0, len(roleGrantFieldDefs))
	for k := range roleGrantFieldDefs {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		f := roleGrantFieldDefs[k]
		if f.grant != grant && f.set(&r.roleGrantFields) {
			return fieldError(k, "is for grant_type=%s, and the role's grant_type is %s (write %s= to clear it)", f.grant, grant, k)
		}
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

// addRoleGrantData adds the grant fields to a role read.
func addRoleGrantData(data map[string]any, r *roleEntry) {
	g := r.roleGrantFields
	data["jwt_issuer"], data["jwt_subject"], data["jwt_audience"] = g.JWTIssuer, g.JWTSubject, g.JWTAudience
	claims := "{}"
	if len(g.JWTClaims) > 0 {
		raw, _ := json.Marshal(g.JWTClaims)
		claims = string(raw)
	}
	data["jwt_claims"] = claims
	data["subject_token_type"], data["requested_token_type"] = g.SubjectTokenType, g.RequestedTokenType
	data["audience"], data["resource"] = nonNil(g.Audience), nonNil(g.Resource)
	data["subject_role"], data["actor_role"] = g.SubjectRole, g.ActorRole
	data["exchange_cache_ttl"] = int64(g.ExchangeCacheTTL.Seconds())
}

// roleGrantNames lists the grants a role may name, for messages.
func roleGrantNames() string {
	names := make([]string, len(backend.RoleGrants))
	for i, g := range backend.RoleGrants {
		names[i] = string(g)
	}
	return strings.Join(names, ", ")
}
