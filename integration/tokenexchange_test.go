//go:build integration

package integration

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const exchangeAudience = "urn:idp-tokens:downstream"

// clientCredentialsToken gets a token straight from oidc-provider, as an
// application holding its own client would.
func (o *OIDCProvider) clientCredentialsToken(t *testing.T, clientID string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, o.Issuer+"/token", strings.NewReader(url.Values{
		"grant_type": {"client_credentials"}, "scope": {"api:read"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, oidcClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		t.Fatalf("client_credentials at oidc-provider: status %d, %v", resp.StatusCode, err)
	}
	return out.AccessToken
}

// TestTokenExchangeOIDCProvider: RFC 8693 through a real Vault against
// oidc-provider, whose token exchange handler (server.js) checks the
// subject and actor tokens with the provider's own token models and issues
// a token for the downstream audience.
func TestTokenExchangeOIDCProvider(t *testing.T) {
	t.Parallel()
	const ttl = 60 * time.Second
	op := StartOIDCProvider(t, ttl)
	v := StartDevVault(t)
	v.Write("idp/config/op-src", "token_url="+op.Issuer+"/token", "client_id=basic-client",
		"client_secret="+oidcClientSecret, "scopes=api:read")
	v.Write("idp/roles/base", "config=op-src")
	v.Write("idp/config/op-actor", "token_url="+op.Issuer+"/token", "client_id=post-client",
		"client_secret="+oidcClientSecret, "client_auth=post", "scopes=api:read")
	v.Write("idp/roles/actor", "config=op-actor")
	v.Write("idp/config/op-sts", "token_url="+op.Issuer+"/token", "client_id=exchange-client",
		"client_secret="+oidcClientSecret)

	t.Run("subject_role and actor_role", func(t *testing.T) {
		v := v.For(t)
		v.Write("idp/roles/downstream", "config=op-sts", "grant_type=token_exchange",
			"subject_role=base", "actor_role=actor", "audience="+exchangeAudience)
		s := v.ReadCreds("downstream")
		in := op.Introspect(t, "basic-client", s.String("access_token"))
		act, _ := in["act"].(map[string]any)
		if in["active"] != true || in["aud"] != exchangeAudience || in["subject_client"] != "basic-client" ||
			act["sub"] != "post-client" || in["client_id"] != "exchange-client" {
			t.Fatalf("introspection of the exchanged token: %v", in)
		}
		if s.String("issued_token_type") != "urn:ietf:params:oauth:token-type:access_token" {
			t.Errorf("issued_token_type = %q", s.String("issued_token_type"))
		}
		if d := math.Abs(float64(s.LeaseDuration) - ttl.Seconds()); d > 3 {
			t.Errorf("lease_duration %d, want the token's %v", s.LeaseDuration, ttl)
		}
		if again := v.ReadCreds("downstream"); again.String("access_token") != s.String("access_token") {
			t.Error("second read exchanged again, want the cached token")
		}
	})

	t.Run("caller brings the subject token", func(t *testing.T) {
		v := v.For(t)
		v.Write("idp/roles/caller", "config=op-sts", "grant_type=token_exchange", "audience="+exchangeAudience)
		subject := op.clientCredentialsToken(t, "post-client")
		var s Secret
		v.JSON(&s, "write", "idp/exchange/caller", "subject_token="+subject)
		in := op.Introspect(t, "basic-client", s.String("access_token"))
		if in["active"] != true || in["aud"] != exchangeAudience || in["subject_client"] != "post-client" {
			t.Fatalf("introspection: %v", in)
		}
		if s.LeaseID == "" || s.Renewable || math.Abs(float64(s.LeaseDuration)-ttl.Seconds()) > 3 {
			t.Errorf("lease %q %d s renewable=%v, want a lease of the token's life", s.LeaseID, s.LeaseDuration, s.Renewable)
		}
		var again Secret
		v.JSON(&again, "write", "idp/exchange/caller", "subject_token="+subject)
		if again.String("access_token") != s.String("access_token") {
			t.Error("the same subject token was exchanged again, want the cached exchange")
		}
		other := op.clientCredentialsToken(t, "post-client")
		var third Secret
		v.JSON(&third, "write", "idp/exchange/caller", "subject_token="+other)
		if third.String("access_token") == s.String("access_token") {
			t.Error("another subject token was served the first caller's exchange")
		}
		const bogus = "not-a-token-of-this-provider-42"
		r := v.CLI("write", "idp/exchange/caller", "subject_token="+bogus)
		if r.Err == nil || !strings.Contains(r.Stderr, "invalid_grant") || !strings.Contains(r.Stderr, `config "op-sts"`) || strings.Contains(r.Stderr, bogus) {
			t.Errorf("bogus subject: err=%v stderr=%s", r.Err, r.Stderr)
		}
		r = v.CLI("read", "idp/creds/caller")
		if r.Err == nil || !strings.Contains(r.Stderr, "vault write idp/exchange/caller subject_token=") {
			t.Errorf("creds of a caller-subject role: err=%v stderr=%s", r.Err, r.Stderr)
		}
		help := v.Run("path-help", "idp/exchange/caller")
		for _, f := range []string{"subject_token", "subject_token_type", "SHA-256"} {
			if !strings.Contains(help, f) {
				t.Errorf("path-help of exchange/ lacks %s", f)
			}
		}
	})
}
