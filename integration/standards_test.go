//go:build integration

package integration

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestStandardsOIDCProvider: discovery from oidc-provider's issuer (no
// token_url), private_key_jwt with a key whose public JWK the provider
// holds, drop revoking the token (introspection says active=false), and a
// secret rotation the provider does not know yet (the previous secret serves).
func TestStandardsOIDCProvider(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "it-key-1", Algorithm: "RS256", Use: "sig"}}})
	op := StartOIDCProvider(t, 60*time.Second, "OIDC_JWT_CLIENT_JWKS="+string(jwks))
	v := StartDevVault(t)

	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := filepath.Join(t.TempDir(), "jwt-client.pem")
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))

	readConfig := func(v *Vault, name string) map[string]any {
		var out struct {
			Data map[string]any `json:"data"`
		}
		v.JSON(&out, "read", "idp/config/"+name)
		return out.Data
	}

	t.Run("discovery", func(t *testing.T) {
		v := v.For(t)
		v.Write("idp/config/op-disc", "provider=oauth2", "issuer="+op.Issuer,
			"client_id=basic-client", "client_secret="+oidcClientSecret, "scopes=api:read")
		v.Write("idp/roles/op-disc", "config=op-disc")
		s := v.ReadCreds("op-disc")
		if in := op.Introspect(t, "basic-client", s.String("access_token")); in["active"] != true || in["client_id"] != "basic-client" {
			t.Fatalf("introspection: %v", in)
		}
		c := readConfig(v, "op-disc")
		if c["issuer"] != op.Issuer || c["token_url"] != "" || c["client_auth"] != "auto" {
			t.Errorf("config read: %v", c)
		}
		// A wrong issuer fails the write, naming the URL read.
		r := v.CLI("write", "idp/config/op-bad", "issuer="+op.Issuer+"/nope", "client_id=basic-client", "client_secret="+oidcClientSecret)
		if r.Err == nil || !strings.Contains(r.Stderr, op.Issuer+"/nope/.well-known/openid-configuration") {
			t.Errorf("wrong issuer: err=%v stderr=%s", r.Err, r.Stderr)
		}
		if strings.Contains(r.Stderr, oidcClientSecret) {
			t.Error("error shows the client secret")
		}
	})

	t.Run("private_key_jwt", func(t *testing.T) {
		v := v.For(t)
		v.Write("idp/config/op-jwt", "issuer="+op.Issuer, "client_id=jwt-client", "client_auth=private_key_jwt",
			"private_key=@"+keyFile, "private_key_id=it-key-1", "scopes=api:read")
		v.Write("idp/roles/op-jwt", "config=op-jwt")
		s := v.ReadCreds("op-jwt")
		tok := s.String("access_token")
		in := op.Introspect(t, "basic-client", tok)
		if in["active"] != true || in["client_id"] != "jwt-client" || in["scope"] != "api:read" {
			t.Fatalf("introspection: %v", in)
		}
		if again := v.ReadCreds("op-jwt"); again.String("access_token") != tok {
			t.Error("second read minted again")
		}
		c := readConfig(v, "op-jwt")
		if c["private_key_set"] != true || c["signing_alg"] != "" {
			t.Errorf("config read: %v", c)
		}
		for _, val := range c {
			if s, ok := val.(string); ok && strings.Contains(s, "PRIVATE KEY") {
				t.Fatal("config read shows the private key")
			}
		}
		// Auto selection picks private_key_jwt when only a key is held.
		v.Write("idp/config/op-jwt-auto", "issuer="+op.Issuer, "client_id=jwt-client",
			"private_key=@"+keyFile, "private_key_id=it-key-1", "scopes=api:read")
		v.Write("idp/roles/op-jwt-auto", "config=op-jwt-auto")
		if in := op.Introspect(t, "basic-client", v.ReadCreds("op-jwt-auto").String("access_token")); in["client_id"] != "jwt-client" {
			t.Fatalf("auto: introspection %v", in)
		}
	})

	t.Run("drop revokes", func(t *testing.T) {
		v := v.For(t)
		v.Write("idp/config/op-rev", "issuer="+op.Issuer, "client_id=post-client",
			"client_secret="+oidcClientSecret, "client_auth=post", "scopes=api:read")
		v.Write("idp/roles/op-rev", "config=op-rev")
		tok := v.ReadCreds("op-rev").String("access_token")
		if in := op.Introspect(t, "basic-client", tok); in["active"] != true {
			t.Fatalf("fresh token not active: %v", in)
		}
		var out Secret
		v.JSON(&out, "write", "-f", "idp/creds/op-rev/drop")
		if out.Data["dropped"] != true || len(out.Warnings) != 0 {
			t.Fatalf("drop: %+v", out)
		}
		if in := op.Introspect(t, "basic-client", tok); in["active"] != false {
			t.Fatalf("dropped token still active at the provider: %v", in)
		}
		next := v.ReadCreds("op-rev").String("access_token")
		if next == tok {
			t.Fatal("read after drop returned the dropped token")
		}
		if in := op.Introspect(t, "basic-client", next); in["active"] != true {
			t.Fatalf("new token not active: %v", in)
		}
		// Deleting the config revokes its token too.
		v.Run("delete", "idp/config/op-rev")
		if in := op.Introspect(t, "basic-client", next); in["active"] != false {
			t.Fatalf("token of a deleted config still active: %v", in)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		v := v.For(t)
		v.Write("idp/config/op-rot", "issuer="+op.Issuer, "client_id=basic-client",
			"client_secret="+oidcClientSecret, "scopes=api:read")
		v.Write("idp/roles/op-rot", "config=op-rot")
		first := v.ReadCreds("op-rot").String("access_token")
		// The provider does not know the new secret yet.
		v.Write("idp/config/op-rot/rotate", "client_secret=not-yet-registered-42")
		if again := v.ReadCreds("op-rot").String("access_token"); again != first {
			t.Fatal("rotation dropped the cached token")
		}
		v.Run("write", "-f", "idp/creds/op-rot/drop")
		tok := v.ReadCreds("op-rot").String("access_token")
		if in := op.Introspect(t, "basic-client", tok); in["active"] != true {
			t.Fatalf("token via the previous secret: %v", in)
		}
		if c := readConfig(v, "op-rot"); c["previous_client_secret_set"] != true {
			t.Errorf("config read: %v", c)
		}
		var m struct {
			Data struct {
				Configs map[string]struct {
					SecretFallbacks map[string]float64 `json:"secret_fallbacks"`
				} `json:"configs"`
			} `json:"data"`
		}
		v.JSON(&m, "read", "idp/metrics")
		if got := m.Data.Configs["op-rot"].SecretFallbacks["success"]; got < 1 {
			t.Errorf("secret_fallbacks success = %v, want >= 1", got)
		}
		v.Write("idp/config/op-rot/rotate", "clear_previous=true")
		v.Run("write", "-f", "idp/creds/op-rot/drop")
		r := v.CLI("read", "idp/creds/op-rot")
		if r.Err == nil || !strings.Contains(r.Stderr, "invalid_client") {
			t.Fatalf("after clear_previous the unknown secret should be refused: err=%v %s", r.Err, r.Stderr)
		}
	})
}
