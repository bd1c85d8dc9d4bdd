package idptokens

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
)

// stdIdP is a fake IdP (oauth2 style, serving its discovery metadata)
// behind a server that records revocation requests.
type stdIdP struct {
	*fakeidp.Server
	srv     *httptest.Server
	mu      sync.Mutex
	revoked []url.Values
}

func startStdIdP(t *testing.T, opts fakeidp.Options) *stdIdP {
	t.Helper()
	opts.Style = fakeidp.StyleOAuth2
	s := &stdIdP{Server: fakeidp.New(opts)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/connect/revocation":
			body, _ := io.ReadAll(r.Body)
			form, _ := url.ParseQuery(string(body))
			s.mu.Lock()
			s.revoked = append(s.revoked, form)
			s.mu.Unlock()
			r.Body = io.NopCloser(strings.NewReader(string(body)))
		}
		s.Server.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stdIdP) revocations() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.revoked...)
}

const stdSecret = "std-secret-1234"

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

// Rotation: the IdP still knows only the old secret; after rotate the
// current (new) secret is refused and the previous one serves, counted.
// Clearing the previous one leaves only the refused secret.
func TestRotateClientSecret(t *testing.T) {
	e := newTestEnv(t)
	idp := startStdIdP(t, fakeidp.Options{ClientID: "c1", ClientSecret: stdSecret, Scopes: []string{"api"}})
	e.ok(logical.UpdateOperation, "config/std", map[string]any{"token_url": idp.srv.URL + "/connect/token", "client_auth": "post",
		"client_id": "c1", "client_secret": stdSecret, "scopes": "api"})
	e.ok(logical.UpdateOperation, "roles/std", map[string]any{"config": "std"})
	first := e.creds("std").Data["access_token"]
	gen := e.entry("std").Generation

	const next = "next-secret-5678"
	resp := e.ok(logical.UpdateOperation, "config/std/rotate", map[string]any{"client_secret": next})
	if resp.Data["previous_client_secret_set"] != true || resp.Data["client_secret_set"] != true {
		t.Fatalf("rotate answered %v", resp.Data)
	}
	for _, v := range resp.Data {
		if s, ok := v.(string); ok && (s == next || s == stdSecret) {
			t.Fatal("rotate answer shows a secret")
		}
	}
	if e.entry("std").Generation != gen {
		t.Fatal("rotation changed the generation")
	}
	if e.creds("std").Data["access_token"] != first {
		t.Fatal("rotation dropped the cached token")
	}
	read := e.ok(logical.ReadOperation, "config/std", nil).Data
	if read["previous_client_secret_set"] != true {
		t.Fatalf("read = %v", read)
	}
	before := idp.TokenRequests()
	e.ok(logical.UpdateOperation, "creds/std/drop", nil)
	tok := e.creds("std").Data["access_token"].(string)
	if !idp.Valid(tok) {
		t.Fatal("token via the previous secret not valid")
	}
	reqs := idp.Requests()[before:]
	if len(reqs) != 2 || reqs[0].Form.Get("client_secret") != next || reqs[1].Form.Get("client_secret") != stdSecret {
		t.Fatalf("want the new then the previous secret, got %d requests", len(reqs))
	}
	if got := e.b.metrics.Snapshot(0).Configs["std"].SecretFallbacks; got["success"] != 1 || got["failure"] != 0 {
		t.Fatalf("secret_fallbacks = %v", got)
	}

	// Clearing the previous secret: only the new one, which the IdP refuses.
	e.ok(logical.UpdateOperation, "config/std/rotate", map[string]any{"clear_previous": true})
	if e.entry("std").PreviousClientSecret != "" {
		t.Fatal("previous secret kept")
	}
	e.ok(logical.UpdateOperation, "creds/std/drop", nil)
	msg := e.fails(logical.ReadOperation, "creds/std", nil, "invalid_client")
	if strings.Contains(msg, next) || strings.Contains(msg, stdSecret) {
		t.Fatalf("error shows a secret: %s", msg)
	}

	// Both refused: one error, counted as a failed fallback.
	e.ok(logical.UpdateOperation, "config/std/rotate", map[string]any{"client_secret": "third-secret-999"})
	msg = e.fails(logical.ReadOperation, "creds/std", nil, "previous credential was refused too")
	if strings.Contains(msg, next) || strings.Contains(msg, "third-secret-999") {
		t.Fatalf("error shows a secret: %s", msg)
	}
	if got := e.b.metrics.Snapshot(0).Configs["std"].SecretFallbacks; got["failure"] != 1 {
		t.Fatalf("secret_fallbacks = %v", got)
	}

	e.fails(logical.UpdateOperation, "config/std/rotate", nil, "give client_secret or private_key")
	e.fails(logical.UpdateOperation, "config/std/rotate", map[string]any{"client_secret": "third-secret-999"}, "current one already")
	e.fails(logical.UpdateOperation, "config/nope/rotate", map[string]any{"client_secret": "x"}, "no config")
	// Moving an endpoint forgets the previous secret.
	e.ok(logical.UpdateOperation, "config/std", map[string]any{"token_url": idp.srv.URL + "/connect/token?x=1", "client_secret": stdSecret})
	if e.entry("std").PreviousClientSecret != "" {
		t.Fatal("previous secret survived an endpoint move")
	}
}

// Drop, role delete and config delete revoke the dropped tokens (refresh
// token first, then access token); a failing revocation does not block.
func TestRevocationOnDropAndDelete(t *testing.T) {
	e := newTestEnv(t)
	idp := startStdIdP(t, fakeidp.Options{ClientID: "c1", ClientSecret: stdSecret, Scopes: []string{"api"}, RefreshTokens: true})
	e.ok(logical.UpdateOperation, "config/std", map[string]any{"token_url": idp.srv.URL + "/connect/token",
		"revocation_url": idp.srv.URL + "/connect/revocation", "client_id": "c1", "client_secret": stdSecret, "scopes": "api"})
	e.ok(logical.UpdateOperation, "roles/a", map[string]any{"config": "std"})
	e.ok(logical.UpdateOperation, "roles/b", map[string]any{"config": "std"})

	tok := e.creds("a").Data["access_token"].(string)
	resp := e.ok(logical.UpdateOperation, "creds/a/drop", nil)
	if resp.Data["dropped"] != true || len(resp.Warnings) != 0 {
		t.Fatalf("drop answered %v %v", resp.Data, resp.Warnings)
	}
	revs := idp.revocations()
	if len(revs) != 2 || revs[0].Get("token_type_hint") != "refresh_token" || revs[1].Get("token_type_hint") != "access_token" || revs[1].Get("token") != tok {
		t.Fatalf("revocations = %v", revs)
	}
	if idp.Valid(tok) {
		t.Fatal("dropped token still valid")
	}
	if again := e.creds("a").Data["access_token"]; again == tok {
		t.Fatal("drop did not make the next read mint")
	}
	// Dropping nothing is fine.
	e.ok(logical.UpdateOperation, "creds/b/drop", nil)

	// Role delete revokes the role's token.
	tokA := e.creds("a").Data["access_token"].(string)
	e.ok(logical.DeleteOperation, "roles/a", nil)
	if idp.Valid(tokA) {
		t.Fatal("token of a deleted role still valid")
	}
	// Config delete revokes every token of the config.
	tokB := e.creds("b").Data["access_token"].(string)
	n := len(idp.revocations())
	e.ok(logical.DeleteOperation, "config/std", nil)
	if idp.Valid(tokB) || len(idp.revocations()) != n+2 {
		t.Fatalf("config delete: valid=%v, %d revocations", idp.Valid(tokB), len(idp.revocations())-n)
	}

	// A failing revocation endpoint: the drop succeeds with a warning.
	e.ok(logical.UpdateOperation, "config/std", map[string]any{"token_url": idp.srv.URL + "/connect/token",
		"revocation_url": idp.srv.URL + "/no-such-endpoint", "client_id": "c1", "client_secret": stdSecret, "scopes": "api"})
	e.ok(logical.UpdateOperation, "roles/b", map[string]any{"config": "std"})
	e.creds("b")
	resp = e.ok(logical.UpdateOperation, "creds/b/drop", nil)
	if resp.Data["dropped"] != true || len(resp.Warnings) == 0 || !strings.Contains(strings.Join(resp.Warnings, " "), "404") {
		t.Fatalf("drop with a failing revocation: %v %v", resp.Data, resp.Warnings)
	}
	if raw, _ := e.storage.Get(context.Background(), "tokens/role/b"); raw != nil {
		t.Fatal("token kept after a failed revocation")
	}
	e.ok(logical.DeleteOperation, "config/std", nil)

	e.fails(logical.UpdateOperation, "creds/nope/drop", nil, "no role")
	// creds/<role> still reads (the drop path does not shadow it).
	e.fails(logical.ReadOperation, "creds/b", nil, "does not exist")
}

// MicroTek's shared token: drop says every role of the config is affected.
func TestDropSharedToken(t *testing.T) {
	e := newTestEnv(t)
	idp, tokenURL := startIdP(t, fakeidp.Options{Style: fakeidp.StyleMicroTek, ClientID: "mt", ClientSecret: stdSecret})
	e.ok(logical.UpdateOperation, "config/mt", map[string]any{"provider": "microtek", "token_url": tokenURL, "client_id": "mt", "client_secret": stdSecret})
	e.ok(logical.UpdateOperation, "roles/one", map[string]any{"config": "mt"})
	e.ok(logical.UpdateOperation, "roles/two", map[string]any{"config": "mt"})
	tok := e.creds("one").Data["access_token"]
	resp := e.ok(logical.UpdateOperation, "creds/two/drop", nil)
	if resp.Data["token_key"] != "config/mt" || len(resp.Warnings) < 1 || !strings.Contains(resp.Warnings[0], "one, two") {
		t.Fatalf("drop answered %v %v", resp.Data, resp.Warnings)
	}
	if e.creds("one").Data["access_token"] == tok {
		t.Fatal("shared token not dropped")
	}
	_ = idp
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
