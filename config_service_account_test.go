package idptokens

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
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
	keyPEM, key := testkeys.RSA(t, 2048)
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
	// Moving the endpoint needs the key again, and the refusal says the key
	// file is how to give it.
	e.fails(logical.UpdateOperation, "config/gcp", map[string]any{"token_url": srv.URL + "/elsewhere"}, "private_key to be written again in the same request (credentials=@key.json writes it)")
}

// device_authorization_url is an endpoint like the others: https off
// loopback, held to the secrets-again rule when it moves, and read back.
func TestConfigDeviceAuthorizationURL(t *testing.T) {
	e := newTestEnv(t)
	_, url := startIdP(t, fakeidp.Options{ClientID: "c", ClientSecret: "s"})
	base := map[string]any{"token_url": url, "client_id": "c", "client_secret": "s"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{k: v}
		for bk, bv := range base {
			m[bk] = bv
		}
		return m
	}
	e.fails(logical.UpdateOperation, "config/d", with("device_authorization_url", "http://idp.example.com/device"), "device_authorization_url:")
	e.ok(logical.UpdateOperation, "config/d", with("device_authorization_url", "https://idp.example.com/device"))
	if got := e.ok(logical.ReadOperation, "config/d", nil).Data["device_authorization_url"]; got != "https://idp.example.com/device" {
		t.Fatalf("read back %v", got)
	}
	e.fails(logical.UpdateOperation, "config/d", map[string]any{"device_authorization_url": "https://evil.example.com/device"},
		"requires client_secret to be written again")
}

// The preset without its key file says which field is missing: credentials,
// not the client_id the key file would have filled in. Nothing is stored.
func TestGoogleServiceAccountNeedsCredentials(t *testing.T) {
	e := newTestEnv(t)
	e.fails(logical.UpdateOperation, "config/g", map[string]any{"provider": "google-service-account"}, "credentials: required for provider google-service-account")
	if entry, _ := e.storage.Get(context.Background(), "config/g"); entry != nil {
		t.Fatal("a refused config was stored")
	}
}
