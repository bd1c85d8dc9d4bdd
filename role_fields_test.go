package idptokens

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
)

// Fields that do not fit the grant, and configs that cannot serve it, are
// refused naming the field.
func TestJWTBearerRoleValidation(t *testing.T) {
	e := newTestEnv(t)
	keyPEM, _ := testkeys.RSA(t, 2048)
	_, url := startIdP(t, fakeidp.Options{ClientID: "c", ClientSecret: "s"})
	e.ok(logical.UpdateOperation, "config/plain", map[string]any{"token_url": url, "client_id": "c", "client_secret": "s"})
	e.ok(logical.UpdateOperation, "config/keyed", map[string]any{"token_url": url, "client_id": "c", "client_auth": "none", "private_key": keyPEM})
	for _, c := range []struct {
		name string
		data map[string]any
		want string
	}{
		{"jwt_subject on client_credentials", map[string]any{"config": "plain", "jwt_subject": "x"}, "jwt_subject: is for grant_type=jwt_bearer"},
		{"jwt_claims on client_credentials", map[string]any{"config": "plain", "jwt_claims": `{"a":1}`}, "jwt_claims: is for grant_type=jwt_bearer"},
		{"jwt_bearer without a key", map[string]any{"config": "plain", "grant_type": "jwt_bearer"}, "has none"},
		{"registered claim", map[string]any{"config": "keyed", "grant_type": "jwt_bearer", "jwt_claims": `{"iss":"x"}`}, `jwt_claims: "iss" is set by the engine`},
		{"claims not an object", map[string]any{"config": "keyed", "grant_type": "jwt_bearer", "jwt_claims": `["a"]`}, "jwt_claims: must be a JSON object"},
		{"client_auth=none for another grant", map[string]any{"config": "keyed", "grant_type": "client_credentials"}, "client_auth=none, which only grant_type=jwt_bearer and device_code"},
		{"unknown grant", map[string]any{"config": "plain", "grant_type": "saml2"}, "jwt_bearer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.fails(logical.UpdateOperation, "roles/r", c.data, c.want)
		})
	}
	e.fails(logical.UpdateOperation, "config/notgoogle", map[string]any{"token_url": url, "credentials": "{}"}, "credentials: is a Google service-account key file")
	e.fails(logical.UpdateOperation, "config/badkey", map[string]any{"provider": "google-service-account", "credentials": `{"type":"authorized_user"}`}, "not service_account")
	msg := e.fails(logical.UpdateOperation, "config/nokey", map[string]any{"provider": "google-service-account",
		"credentials": `{"type":"service_account","client_email":"a@b","private_key_id":"k","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}`}, "credentials:")
	if strings.Contains(msg, "AAAA") {
		t.Errorf("error quotes the key file: %s", msg)
	}
}

func TestTokenExchangeRoleValidation(t *testing.T) {
	e := newExchangeEnv(t, fakeidp.TokenExchangeOptions{})
	e.ok(logical.UpdateOperation, "roles/x1", map[string]any{"config": "sts", "grant_type": "token_exchange", "subject_role": "base"})
	for _, c := range []struct {
		name string
		data map[string]any
		want string
	}{
		{"audience on client_credentials", map[string]any{"config": "sts", "audience": "a"}, "audience: is for grant_type=token_exchange"},
		{"subject_role on jwt_bearer fields", map[string]any{"config": "sts", "subject_role": "base"}, "subject_role: is for grant_type=token_exchange"},
		{"jwt field on token_exchange", map[string]any{"config": "sts", "grant_type": "token_exchange", "jwt_subject": "x"}, "jwt_subject: is for grant_type=jwt_bearer"},
		{"missing subject role", map[string]any{"config": "sts", "grant_type": "token_exchange", "subject_role": "nope"}, `subject_role: no role named "nope"`},
		{"itself", map[string]any{"config": "sts", "grant_type": "token_exchange", "subject_role": "r"}, "subject_role: cannot be the role itself"},
		{"chain", map[string]any{"config": "sts", "grant_type": "token_exchange", "subject_role": "x1"}, "exchanges do not chain"},
		{"actor chain", map[string]any{"config": "sts", "grant_type": "token_exchange", "actor_role": "x1"}, "actor_role: role \"x1\" is itself"},
		{"resource with fragment", map[string]any{"config": "sts", "grant_type": "token_exchange", "resource": "https://a/#f"}, "resource:"},
		{"relative resource", map[string]any{"config": "sts", "grant_type": "token_exchange", "resource": "orders"}, "not an absolute URI"},
		{"requested type not a URI", map[string]any{"config": "sts", "grant_type": "token_exchange", "requested_token_type": "bad type"}, `requested_token_type: "bad type" is not a token type URI`},
		{"subject type not a URI", map[string]any{"config": "sts", "grant_type": "token_exchange", "subject_token_type": "access_token"}, `subject_token_type: "access_token" is not a token type URI`},
	} {
		t.Run(c.name, func(t *testing.T) { e.fails(logical.UpdateOperation, "roles/r", c.data, c.want) })
	}
}
