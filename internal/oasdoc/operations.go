package oasdoc

// PluginOperation is what Vault's OpenAPI document must say of one operation of
// the plugin, its path relative to the mount.
type PluginOperation struct {
	Path, Method, ID string
	Query            []string // non-path parameters a GET takes from the query
}

// Operations are every operation of the plugin, as the document must list
// them: the one table of the unit check (the framework's document) and of
// the real-Vault check (sys/internal/specs/openapi).
var Operations = []PluginOperation{
	{"/auth-url/{role}", "post", "idp-write-auth-url", nil},
	{"/callback", "get", "idp-read-callback", []string{"code", "error", "error_description", "state"}},
	{"/callback", "post", "idp-write-callback", nil},
	{"/config/", "get", "idp-list-configs", []string{"list"}},
	{"/config/{name}", "get", "idp-read-config", nil},
	{"/config/{name}", "post", "idp-write-config", nil},
	{"/config/{name}", "delete", "idp-delete-config", nil},
	{"/config/{name}/rotate", "post", "idp-rotate-config", nil},
	{"/config/{name}/public-keys", "get", "idp-read-public-keys", nil},
	{"/config/{name}/rotate-key", "post", "idp-rotate-key", nil},
	{"/creds/{role}", "get", "idp-read-credentials", []string{"min_ttl"}},
	{"/creds/{role}/drop", "post", "idp-drop-credentials", nil},
	{"/device-code/{role}", "post", "idp-write-device-code", nil},
	{"/exchange/{role}", "post", "idp-write-exchange", nil},
	{"/jwks/{name}", "get", "idp-read-jwks", nil},
	{"/logins/{role}/", "get", "idp-list-logins", []string{"list"}},
	{"/logins/{role}/{entity_id}", "delete", "idp-delete-login", nil},
	{"/metrics", "get", "idp-read-metrics", []string{"format"}},
	{"/roles/", "get", "idp-list-roles", []string{"list"}},
	{"/roles/{name}", "get", "idp-read-role", nil},
	{"/roles/{name}", "post", "idp-write-role", nil},
	{"/roles/{name}", "delete", "idp-delete-role", nil},
	{"/settings", "get", "idp-read-settings", nil},
	{"/settings", "post", "idp-write-settings", nil},
	{"/token/{role}", "get", "idp-read-token", []string{"min_ttl"}},
}
