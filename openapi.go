// What Vault's OpenAPI document (sys/internal/specs/openapi) says about the
// engine: one operation-id prefix, and the response of every operation. The
// fields listed here are the keys the handlers return; openapi_test.go holds
// each handler to them.

package idptokens

import (
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
)

// operationPrefix begins every operation id (idp-read-credentials, ...).
const operationPrefix = "idp"

// ok200 is a 200 answer with the given JSON data fields.
func ok200(desc string, fields map[string]*framework.FieldSchema) map[int][]framework.Response {
	return map[int][]framework.Response{http.StatusOK: {{Description: desc, Fields: fields}}}
}

// noContent is the answer of a write or delete that returns no data.
func noContent() map[int][]framework.Response {
	return map[int][]framework.Response{http.StatusNoContent: {{Description: "No content."}}}
}

// listResponses is the answer of a LIST.
func listResponses(what string) map[int][]framework.Response {
	return ok200("The names of the "+what+".", map[string]*framework.FieldSchema{
		"keys": {Type: framework.TypeStringSlice, Description: "Names of the " + what + ".", Required: true},
	})
}

func respString(desc string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeString, Description: desc, Required: true}
}

func respBool(desc string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeBool, Description: desc, Required: true}
}

func respList(desc string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeStringSlice, Description: desc, Required: true}
}

func respSeconds(desc string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeDurationSecond, Description: desc + " (seconds).", Required: true}
}

// respSecondsOrUnset is a duration whose 0 means none is set.
func respSecondsOrUnset(desc string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeDurationSecond, Description: desc + " (seconds; 0: unset).", Required: true}
}

// credsResponses: creds/<role> read, the leased secret's data.
func credsResponses() map[int][]framework.Response {
	return ok200("An access token, leased for as long as it has left.", map[string]*framework.FieldSchema{
		"access_token":      respString("The access token."),
		"token_type":        respString("Its type, as the IdP named it (Bearer)."),
		"expires_at":        respString("When the token expires (RFC 3339, UTC)."),
		"scope":             respString("The scopes granted, space-separated."),
		"id_token":          {Type: framework.TypeString, Description: "The OpenID Connect ID token, when the IdP sent one."},
		"expires_from":      respString("Where the lifetime came from: expires_in, jwt_exp or default_token_ttl."),
		"issued_token_type": {Type: framework.TypeString, Description: "token_exchange: the type of the token issued (RFC 8693)."},
	})
}

// tokenResponses: token/<role> read, the unleased token.
func tokenResponses() map[int][]framework.Response {
	return ok200("The role's access token, without a lease.", map[string]*framework.FieldSchema{
		"access_token": respString("The access token."),
		"token_type":   respString("Its type, as the IdP named it (Bearer)."),
		"expires_at":   respString("When the token expires (RFC 3339, UTC)."),
		"expires_in":   {Type: framework.TypeInt, Description: "Seconds the token may be relied on: its remaining life, or on a single_active_token config until the next token may be minted.", Required: true},
		"scope":        respString("The scopes granted, space-separated."),
		"id_token":     {Type: framework.TypeString, Description: "The OpenID Connect ID token, when the IdP sent one."},
	})
}

// exchangeResponses: exchange/<role>, the caller's token exchanged, leased.
func exchangeResponses() map[int][]framework.Response {
	r := credsResponses()
	fields := r[http.StatusOK][0].Fields
	delete(fields, "id_token") // RFC 8693 issues no ID token
	fields["issued_token_type"] = respString("The type of the token issued (RFC 8693).")
	return r
}

// deviceCodeResponses: device-code/<role>, a device login begun.
func deviceCodeResponses() map[int][]framework.Response {
	return ok200("What a person needs to complete the login; the device code stays in Vault.", map[string]*framework.FieldSchema{
		"user_code":                 respString("The code the person enters."),
		"verification_uri":          respString("Where the person enters it."),
		"verification_uri_complete": {Type: framework.TypeString, Description: "The URI with the code in it, when the IdP sent one."},
		"expires_at":                respString("When the login expires (RFC 3339, UTC)."),
		"interval":                  respSeconds("How often Vault polls the token endpoint"),
	})
}

// configReadResponses: config/<name> read. Secrets show only as *_set.
func configReadResponses() map[int][]framework.Response {
	return ok200("The connection, without its secrets.", configReadSchema())
}

// roleReadResponses: roles/<name> read.
func roleReadResponses() map[int][]framework.Response {
	fields := map[string]*framework.FieldSchema{
		"config":           respString("Config the role uses."),
		"grant_type":       respString("Grant."),
		"scopes":           respList("Scopes asked for."),
		"extra_params":     {Type: framework.TypeKVPairs, Description: "Extra form fields of the token request.", Required: true},
		"ttl":              respSecondsOrUnset("Cap on the lease"),
		"max_ttl":          respSecondsOrUnset("Cap on the lease and its max TTL"),
		"min_ttl":          respSecondsOrUnset("Least time left for a cached token to be handed out"),
		"prompt":           respList("OIDC prompt values of the role's login URL (authorization_code)."),
		"renewable_leases": respBool("Whether creds leases are renewable (within the token's life)."),
	}
	for name, f := range roleGrantFieldDefs {
		switch f.schema.Type {
		case framework.TypeCommaStringSlice:
			fields[name] = respList(f.schema.Description)
		case framework.TypeDurationSecond:
			fields[name] = respSecondsOrUnset(f.schema.Description)
		default:
			fields[name] = respString(f.schema.Description)
		}
	}
	return ok200("The role.", fields)
}

// rotateResponses: config/<name>/rotate.
func rotateResponses() map[int][]framework.Response {
	return ok200("Which credentials the config now holds.", map[string]*framework.FieldSchema{
		"client_secret_set":          respBool("Whether a client_secret is held."),
		"previous_client_secret_set": respBool("Whether a previous client secret is held."),
		"private_key_set":            respBool("Whether a private_key is held."),
		"private_key_id":             respString("kid of the current private_key."),
		"previous_private_key_set":   respBool("Whether a previous private key is held."),
	})
}

// dropResponses: creds/<role>/drop.
func dropResponses() map[int][]framework.Response {
	return ok200("What was dropped.", map[string]*framework.FieldSchema{
		"dropped":   respBool("Whether a cached token was dropped."),
		"token_key": respString("The cache key of the role's token (role/<name>, or config/<name> when the config's roles share one)."),
		"shared_by": {Type: framework.TypeStringSlice, Description: "The roles sharing the dropped token (one live token per client)."},
	})
}

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

// settingsResponses: settings read and update.
func settingsResponses() map[int][]framework.Response {
	return ok200("The mount's settings.", map[string]*framework.FieldSchema{
		"allowed_hosts": respList("Hosts configs may name; empty allows any."),
	})
}

// metricsResponses: metrics read, JSON by default.
func metricsResponses() map[int][]framework.Response {
	return map[int][]framework.Response{http.StatusOK: {
		{Description: "Counters as JSON (format=json).", Fields: map[string]*framework.FieldSchema{
			"configs":       {Type: framework.TypeMap, Description: "Counters per config.", Required: true},
			"cached_tokens": {Type: framework.TypeInt, Description: "Number of tokens in the cache.", Required: true},
		}},
		{Description: "The Prometheus text format 0.0.4 (format=prometheus).", MediaType: "text/plain; version=0.0.4"},
	}}
}
