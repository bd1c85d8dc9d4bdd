package idptokens

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// serviceAccountKeyFile is a Google service-account key file as the Cloud
// console downloads it, with tokenURI as its token_uri.
func serviceAccountKeyFile(t *testing.T, keyPEM, tokenURI string) string {
	t.Helper()
	raw, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "p", "private_key_id": "0123abcd",
		"private_key": keyPEM, "client_email": "vault@p.iam.gserviceaccount.com", "client_id": "1234567890",
		"auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": tokenURI,
	})
	return string(raw)
}

// provider=google-service-account: the key file gives client, key and token
// endpoint; the scopes travel in the assertion; no client authentication.
func TestGoogleServiceAccount(t *testing.T) {
	e := newTestEnv(t)
	keyPEM, key := testRSAKeyPEM(t)
	idp := fakeidp.NewJWTBearer(fakeidp.JWTBearerOptions{Key: &key.PublicKey, KeyID: "0123abcd",
		Issuer: "vault@p.iam.gserviceaccount.com", Subject: "admin@example.com", Google: true,
		Scope: "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/devstorage.read_only"})
	srv := httptest.NewServer(idp)
	t.Cleanup(srv.Close)
	e.ok(logical.UpdateOperation, "config/gcp", map[string]any{"provider": "google-service-account",
		"credentials": serviceAccountKeyFile(t, keyPEM, srv.URL+"/token")})
	e.ok(logical.UpdateOperation, "roles/gcs", map[string]any{"config": "gcp", "jwt_subject": "admin@example.com",
		"scopes": "https://www.googleapis.com/auth/cloud-platform,https://www.googleapis.com/auth/devstorage.read_only"})

	resp := e.creds("gcs")
	if !idp.Valid(resp.Data["access_token"].(string)) {
		t.Fatalf("token not issued by the endpoint; refusals: %v", idp.Refusals())
	}
	if ttl := leaseTTL(resp); ttl < time.Hour-3*time.Second || ttl > time.Hour {
		t.Errorf("lease %v, want the token's hour", ttl)
	}
	if e.creds("gcs").Data["access_token"] != resp.Data["access_token"] || len(idp.Requests()) != 1 {
		t.Errorf("second read made %d requests in all, want the cached token", len(idp.Requests()))
	}
	cfg := e.ok(logical.ReadOperation, "config/gcp", nil).Data
	if cfg["client_id"] != "vault@p.iam.gserviceaccount.com" || cfg["token_url"] != srv.URL+"/token" || cfg["client_auth"] != "none" ||
		cfg["private_key_id"] != "0123abcd" || cfg["private_key_set"] != true {
		t.Errorf("config read %v", cfg)
	}
	for k, v := range cfg {
		if s, ok := v.(string); ok && strings.Contains(s, "PRIVATE KEY") {
			t.Errorf("config read shows the key in %s", k)
		}
	}
}

// The generic grant: the config's client authentication, the scope form
// field, issuer defaulting to client_id, extra claims.
func TestJWTBearerGenericRole(t *testing.T) {
	e := newTestEnv(t)
	keyPEM, key := testRSAKeyPEM(t)
	idp := fakeidp.NewJWTBearer(fakeidp.JWTBearerOptions{Key: &key.PublicKey, KeyID: "k1", Issuer: "app", Subject: "svc-orders",
		Audience: "https://as.example/", ClientID: "app", ClientSecret: "app-secret", FormScope: "orders.read",
		Claims: map[string]string{"tenant": "t1"}, TokenTTL: 10 * time.Minute})
	srv := httptest.NewServer(idp)
	t.Cleanup(srv.Close)
	e.ok(logical.UpdateOperation, "config/as", map[string]any{"token_url": srv.URL + "/token", "client_id": "app",
		"client_secret": "app-secret", "private_key": keyPEM, "private_key_id": "k1"})
	e.ok(logical.UpdateOperation, "roles/orders", map[string]any{"config": "as", "grant_type": "jwt_bearer", "scopes": "orders.read",
		"jwt_subject": "svc-orders", "jwt_audience": "https://as.example/", "jwt_claims": `{"tenant":"t1"}`})
	resp := e.creds("orders")
	if !idp.Valid(resp.Data["access_token"].(string)) {
		t.Fatalf("refusals: %v", idp.Refusals())
	}
	if ttl := leaseTTL(resp); ttl > 10*time.Minute || ttl < 10*time.Minute-3*time.Second {
		t.Errorf("lease %v, want the token's 10m", ttl)
	}
	role := e.ok(logical.ReadOperation, "roles/orders", nil).Data
	if role["jwt_subject"] != "svc-orders" || role["jwt_claims"] != `{"tenant":"t1"}` || role["grant_type"] != "jwt_bearer" {
		t.Errorf("role read %v", role)
	}
	// A changed claim is another request: the cached token is not reused.
	idp2Reqs := len(idp.Requests())
	e.ok(logical.UpdateOperation, "roles/orders", map[string]any{"jwt_claims": `{"tenant":"t2"}`})
	e.fails(logical.ReadOperation, "creds/orders", nil, "claim tenant must be t1")
	if len(idp.Requests()) != idp2Reqs+1 {
		t.Errorf("changing jwt_claims did not drop the cached token")
	}
}

// Fields that do not fit the grant, and configs that cannot serve it, are
// refused naming the field.
func TestJWTBearerRoleValidation(t *testing.T) {
	e := newTestEnv(t)
	keyPEM, _ := testRSAKeyPEM(t)
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
