package idptokens

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
)

// Discovery: a config with only an issuer takes token and revocation
// endpoints and the method from the metadata; a bad issuer fails the write.
func TestConfigDiscovery(t *testing.T) {
	e := newTestEnv(t)
	idp := startStdIdP(t, fakeidp.Options{ClientID: "c1", ClientSecret: stdSecret, Scopes: []string{"api"}, RefreshTokens: true})
	e.ok(logical.UpdateOperation, "config/std", map[string]any{"issuer": idp.srv.URL, "client_id": "c1", "client_secret": stdSecret, "scopes": "api"})
	e.ok(logical.UpdateOperation, "roles/std", map[string]any{"config": "std"})
	tok := e.creds("std").Data["access_token"].(string)
	if !idp.Valid(tok) {
		t.Fatal("token from the discovered endpoint is not valid")
	}
	// client_secret_basic is preferred over client_secret_post.
	if h := idp.LastRequest().Header.Get("Authorization"); !strings.HasPrefix(h, "Basic ") {
		t.Fatalf("discovered method: Authorization %q, want Basic", h)
	}
	read := e.ok(logical.ReadOperation, "config/std", nil).Data
	if read["issuer"] != idp.srv.URL || read["client_auth"] != "auto" || read["token_url"] != "" {
		t.Fatalf("read = %v", read)
	}

	// Drop revokes through the discovered revocation endpoint.
	e.ok(logical.UpdateOperation, "creds/std/drop", nil)
	if idp.Valid(tok) {
		t.Fatal("dropped token still valid at the IdP")
	}

	// Issuer mismatch, unreachable issuer and no metadata fail the write, naming the URL.
	idp.SetMetadata(func(string) string {
		return `{"issuer":"https://other.example","token_endpoint":"https://other.example/token"}`
	})
	msg := e.fails(logical.UpdateOperation, "config/bad", map[string]any{"issuer": idp.srv.URL, "client_id": "c1", "client_secret": stdSecret}, "issuer")
	if !strings.Contains(msg, idp.srv.URL+"/.well-known/openid-configuration") || !strings.Contains(msg, "other.example") {
		t.Fatalf("mismatch error %q", msg)
	}
	idp.SetMetadata(func(string) string { return "" })
	msg = e.fails(logical.UpdateOperation, "config/bad", map[string]any{"issuer": idp.srv.URL, "client_id": "c1", "client_secret": stdSecret}, "404")
	if !strings.Contains(msg, "/.well-known/oauth-authorization-server") {
		t.Fatalf("no-metadata error %q does not name the RFC 8414 URL", msg)
	}
	// An issuer outside allowed_hosts is refused like any endpoint.
	e.ok(logical.UpdateOperation, "settings", map[string]any{"allowed_hosts": "idp.example.com"})
	e.fails(logical.UpdateOperation, "config/bad", map[string]any{"issuer": idp.srv.URL, "client_id": "c1", "client_secret": stdSecret}, "allowed_hosts")
}

// Explicit URLs win over discovered ones; changing the issuer needs the
// secrets again and changes the generation.
func TestConfigDiscoveryExplicitWinsAndIssuerIsAnEndpoint(t *testing.T) {
	e := newTestEnv(t)
	idp := startStdIdP(t, fakeidp.Options{ClientID: "c1", ClientSecret: stdSecret, Scopes: []string{"api"}})
	idp.SetMetadata(func(base string) string {
		return `{"issuer":"` + base + `","token_endpoint":"` + base + `/nowhere","token_endpoint_auth_methods_supported":["client_secret_post"]}`
	})
	e.ok(logical.UpdateOperation, "config/std", map[string]any{"issuer": idp.srv.URL, "token_url": idp.srv.URL + "/connect/token",
		"client_auth": "basic", "client_id": "c1", "client_secret": stdSecret, "scopes": "api"})
	e.ok(logical.UpdateOperation, "roles/std", map[string]any{"config": "std"})
	first := e.creds("std").Data["access_token"]
	if h := idp.LastRequest().Header.Get("Authorization"); !strings.HasPrefix(h, "Basic ") {
		t.Fatal("explicit client_auth=basic lost to the metadata")
	}
	e.fails(logical.UpdateOperation, "config/std", map[string]any{"issuer": "https://elsewhere.example"}, "client_secret")
	gen := e.entry("std").Generation
	e.ok(logical.UpdateOperation, "config/std", map[string]any{"issuer": "", "client_secret": stdSecret})
	if e.entry("std").Generation == gen {
		t.Fatal("removing the issuer kept the generation")
	}
	if e.creds("std").Data["access_token"] == first {
		t.Fatal("token of the former generation served")
	}
}

func (e *testEnv) entry(name string) *configEntry {
	e.t.Helper()
	c, err := loadConfigEntry(context.Background(), e.storage, name)
	if err != nil || c == nil {
		e.t.Fatalf("config %s: %v", name, err)
	}
	return c
}

// private_key_jwt through Vault: the key is write-only, the assertion
// verifies with its public key, rotation falls back to the previous key,
// and client_secret is not required.
func TestConfigPrivateKeyJWT(t *testing.T) {
	e := newTestEnv(t)
	keyPEM, key := testkeys.RSA(t, 2048)
	nextPEM, _ := testkeys.RSA(t, 2048)
	var mu sync.Mutex
	var kids []string
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		tok, err := jwt.ParseSigned(r.PostForm.Get("client_assertion"), []jose.SignatureAlgorithm{jose.RS256})
		var c jwt.Claims
		if err == nil {
			err = tok.Claims(&key.PublicKey, &c)
		}
		if err == nil {
			err = c.Validate(jwt.Expected{Issuer: "jwt-client", Subject: "jwt-client", AnyAudience: jwt.Audience{srv.URL + "/token"}})
		}
		mu.Lock()
		if tok != nil {
			kids = append(kids, tok.Headers[0].KeyID)
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if err != nil || r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		io.WriteString(w, `{"access_token":"at-`+c.ID+`","token_type":"Bearer","expires_in":3600}`)
	}))
	defer srv.Close()
	e.fails(logical.UpdateOperation, "config/jwt", map[string]any{"token_url": srv.URL + "/token", "client_id": "jwt-client", "client_auth": "private_key_jwt"}, "private_key: required")
	e.fails(logical.UpdateOperation, "config/jwt", map[string]any{"token_url": srv.URL + "/token", "client_id": "jwt-client", "client_auth": "private_key_jwt",
		"private_key": keyPEM, "signing_alg": "ES256"}, "needs an EC")
	e.ok(logical.UpdateOperation, "config/jwt", map[string]any{"token_url": srv.URL + "/token", "client_id": "jwt-client", "client_auth": "private_key_jwt",
		"private_key": keyPEM, "private_key_id": "k1"})
	read := e.ok(logical.ReadOperation, "config/jwt", nil).Data
	if read["private_key_set"] != true || read["private_key_id"] != "k1" || read["client_secret_set"] != false {
		t.Fatalf("read = %v", read)
	}
	for _, v := range read {
		if s, ok := v.(string); ok && strings.Contains(s, "PRIVATE KEY") {
			t.Fatal("read shows the private key")
		}
	}
	e.ok(logical.UpdateOperation, "roles/jwt", map[string]any{"config": "jwt"})
	e.creds("jwt")
	// Rotate to a key the server does not know yet: the previous key serves.
	e.ok(logical.UpdateOperation, "config/jwt/rotate", map[string]any{"private_key": nextPEM, "private_key_id": "k2"})
	e.ok(logical.UpdateOperation, "creds/jwt/drop", nil)
	e.creds("jwt")
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(kids, ",") != "k1,k2,k1" {
		t.Fatalf("kids = %v, want k1 then k2 refused then k1", kids)
	}
}

// tls_client_auth config fields: the certificate is readable, the key is
// write-only, both go together.
func TestConfigTLSClientAuthFields(t *testing.T) {
	e := newTestEnv(t)
	certPEM, keyPEM := testkeys.ClientCert(t)
	e.fails(logical.UpdateOperation, "config/m", map[string]any{"token_url": "https://idp.example.com/token", "client_id": "c", "client_auth": "tls_client_auth"}, "required for client_auth=tls_client_auth")
	e.fails(logical.UpdateOperation, "config/m", map[string]any{"token_url": "https://idp.example.com/token", "client_id": "c", "client_auth": "tls_client_auth", "tls_client_cert": certPEM}, "go together")
	e.ok(logical.UpdateOperation, "config/m", map[string]any{"token_url": "https://idp.example.com/token", "client_id": "c", "client_auth": "tls_client_auth",
		"tls_client_cert": certPEM, "tls_client_key": keyPEM})
	read := e.ok(logical.ReadOperation, "config/m", nil).Data
	if read["tls_client_cert"] != strings.TrimSpace(certPEM) || read["tls_client_key_set"] != true || read["client_auth"] != "tls_client_auth" {
		t.Fatalf("read = %v", read)
	}
	if _, has := read["tls_client_key"]; has {
		t.Fatal("read shows tls_client_key")
	}
	e.fails(logical.UpdateOperation, "config/m2", map[string]any{"token_url": "https://idp.example.com/token", "client_id": "c", "client_auth": "auto"}, "auto needs an issuer")
}

func TestAuthorizationEndpointDiscovered(t *testing.T) {
	e := newTestEnv(t)
	idp := startStdIdP(t, fakeidp.Options{ClientID: "c1", ClientSecret: stdSecret})
	e.ok(logical.UpdateOperation, "config/std", map[string]any{"issuer": idp.srv.URL, "client_id": "c1", "client_secret": stdSecret})
	cfg, err := e.b.config(context.Background(), e.storage, "std")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := cfg.authorizationEndpoint(context.Background()); err != nil || u != idp.srv.URL+"/connect/authorize" {
		t.Fatalf("authorizationEndpoint = %q, %v", u, err)
	}
	// auth-url uses the discovered endpoint when the config names no auth_url.
	e.ok(logical.UpdateOperation, "config/std", map[string]any{"redirect_uris": "https://vault.example.com/v1/idp/callback", "client_secret": stdSecret})
	e.ok(logical.UpdateOperation, "roles/login", map[string]any{"config": "std", "grant_type": "authorization_code"})
	got := e.ok(logical.UpdateOperation, "auth-url/login", nil).Data["url"].(string)
	if !strings.HasPrefix(got, idp.srv.URL+"/connect/authorize?") {
		t.Fatalf("auth-url %q does not use the discovered authorization_endpoint", got)
	}
}
