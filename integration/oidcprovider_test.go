//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const oidcClientSecret = "oidc-test-secret"

// OIDCProvider is panva/oidc-provider (OpenID Certified) running under node.
type OIDCProvider struct {
	Issuer string
	Log    string // its stdout and stderr
}

// StartOIDCProvider runs testdata/oidc-provider/server.js on a free loopback
// port, with extraEnv for it (such as OIDC_REDIRECT_URI or OIDC_JWT_CLIENT_JWKS).
func StartOIDCProvider(t *testing.T, tokenTTL time.Duration, extraEnv ...string) *OIDCProvider {
	t.Helper()
	requireSetup(t)
	script := oidcProviderScript(t)
	logPath := filepath.Join(t.TempDir(), "oidc-provider.log")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OIDC_") {
			env = append(env, kv)
		}
	}
	env = append(env, "OIDC_PORT=0", fmt.Sprintf("OIDC_ACCESS_TOKEN_TTL=%d", int(tokenTTL.Seconds())),
		"OIDC_CLIENT_SECRET="+oidcClientSecret)
	env = append(env, extraEnv...)
	p := startProc(t, "oidc-provider", logPath, env, "node", script)
	var issuer string
	if !eventually(30*time.Second, 100*time.Millisecond, func() bool {
		b, _ := os.ReadFile(logPath)
		for _, line := range strings.Split(string(b), "\n") {
			if s, ok := strings.CutPrefix(line, "issuer: "); ok {
				issuer = strings.TrimSpace(s)
				return true
			}
		}
		return p.Exited()
	}) || issuer == "" {
		t.Fatalf("oidc-provider did not start:\n%s", tail(logPath, 30))
	}
	return &OIDCProvider{Issuer: issuer, Log: logPath}
}

// Introspect asks the provider's introspection endpoint (RFC 7662) about token.
func (o *OIDCProvider) Introspect(t *testing.T, clientID, token string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, o.Issuer+"/token/introspection",
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, oidcClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("introspection: status %d, %v", resp.StatusCode, err)
	}
	return out
}

// TestOIDCProvider: the generic oauth2 provider against a certified third-party
// OpenID Provider, with both client authentication methods.
//
// Refresh tokens are not covered here: oidc-provider (rightly, RFC 6749 4.4.3) issues
// none for client_credentials; they come with the authorization_code grant.
func TestOIDCProvider(t *testing.T) {
	t.Parallel()
	const ttl = 20 * time.Second
	op := StartOIDCProvider(t, ttl)
	v := StartDevVault(t)

	for _, c := range []struct{ auth, client string }{
		{"basic", "basic-client"},
		{"post", "post-client"},
	} {
		t.Run("client_auth="+c.auth, func(t *testing.T) {
			v := v.For(t)
			name := "op-" + c.auth
			v.Write("idp/config/"+name, "provider=oauth2", "token_url="+op.Issuer+"/token",
				"client_id="+c.client, "client_secret="+oidcClientSecret, "client_auth="+c.auth,
				"scopes=api:read")
			v.Write("idp/roles/"+name, "config="+name, "grant_type=client_credentials")

			s := v.ReadCreds(name)
			tok := s.String("access_token")
			in := op.Introspect(t, c.client, tok)
			if in["active"] != true {
				t.Fatalf("oidc-provider says the token is not active: %v", in)
			}
			if in["client_id"] != c.client {
				t.Errorf("introspection client_id = %v, want %s", in["client_id"], c.client)
			}
			if in["scope"] != "api:read" {
				t.Errorf("introspection scope = %v, want api:read", in["scope"])
			}
			if d := math.Abs(float64(s.LeaseDuration) - ttl.Seconds()); d > 2 {
				t.Errorf("lease_duration = %d, want oidc-provider's TTL %v within 2 s", s.LeaseDuration, ttl.Seconds())
			}
			if exp, ok := in["exp"].(float64); ok {
				if d := math.Abs(float64(time.Now().Unix()) + float64(s.LeaseDuration) - exp); d > 3 {
					t.Errorf("lease ends %v s away from the token's exp", d)
				}
			}
			if s.Renewable {
				t.Error("lease is renewable, want not renewable")
			}
			if s.String("scope") != "api:read" {
				t.Errorf("scope = %q, want api:read", s.String("scope"))
			}
			if again := v.ReadCreds(name); again.String("access_token") != tok {
				t.Error("second read returned a different token, want the cached one")
			}
		})
	}

	// oidc-provider treats client_secret_basic and client_secret_post as one method
	// family, so a wrong method is not refused there; a wrong secret is.
	t.Run("wrong secret is refused", func(t *testing.T) {
		v := v.For(t)
		const wrong = "not-the-secret-1234"
		v.Write("idp/config/op-wrong", "provider=oauth2", "token_url="+op.Issuer+"/token",
			"client_id=basic-client", "client_secret="+wrong, "client_auth=basic",
			"scopes=api:read")
		v.Write("idp/roles/op-wrong", "config=op-wrong", "grant_type=client_credentials")
		r := v.CLI("read", "idp/creds/op-wrong")
		if r.Err == nil {
			t.Fatalf("read with a wrong client secret succeeded:\n%s", r.Stdout)
		}
		if !strings.Contains(r.Stderr, "invalid_client") {
			t.Errorf("error does not name the IdP's invalid_client: %s", r.Stderr)
		}
		if strings.Contains(r.Stderr, wrong) {
			t.Errorf("error shows the client secret: %s", r.Stderr)
		}
	})
}
