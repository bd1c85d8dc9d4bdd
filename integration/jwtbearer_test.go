//go:build integration

package integration

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// TestJWTBearerGrant: RFC 7523 2.1 through a real Vault, against a strict
// endpoint that verifies the assertion with the registered public key: the
// generic grant (HTTP Basic client authentication, scope in the form) and
// the google-service-account preset from a key file (no client
// authentication, scopes in the assertion).
func TestJWTBearerGrant(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "assertion-key.pem")
	writeFile(t, keyFile, keyPEM)
	v := StartDevVault(t)

	t.Run("generic", func(t *testing.T) {
		v := v.For(t)
		idp := fakeidp.NewJWTBearer(fakeidp.JWTBearerOptions{Key: &key.PublicKey, KeyID: "it-1", Issuer: "vault-client",
			Subject: "batch-job", ClientID: "vault-client", ClientSecret: "jb-client-secret", FormScope: "reports.read",
			TokenTTL: 90 * time.Second})
		srv := httptest.NewServer(idp)
		t.Cleanup(srv.Close)
		v.Write("idp/config/jb", "token_url="+srv.URL+"/oauth/token", "client_id=vault-client",
			"client_secret=jb-client-secret", "private_key=@"+keyFile, "private_key_id=it-1")
		v.Write("idp/roles/reports", "config=jb", "grant_type=jwt_bearer", "jwt_subject=batch-job", "scopes=reports.read")
		s := v.ReadCreds("reports")
		if !idp.Valid(s.String("access_token")) {
			t.Fatalf("token not issued by the endpoint; its refusals: %v", idp.Refusals())
		}
		if s.LeaseDuration < 85 || s.LeaseDuration > 90 || s.Renewable {
			t.Errorf("lease %d s renewable=%v, want the token's 90 s, not renewable", s.LeaseDuration, s.Renewable)
		}
		if s.String("expires_from") != "expires_in" {
			t.Errorf("expires_from = %q", s.String("expires_from"))
		}
		if again := v.ReadCreds("reports"); again.String("access_token") != s.String("access_token") || len(idp.Requests()) != 1 {
			t.Errorf("second read: %d requests, want the cached token", len(idp.Requests()))
		}
		r := v.Run("path-help", "idp/roles/reports")
		for _, f := range []string{"jwt_issuer", "jwt_subject", "jwt_audience", "jwt_claims"} {
			if !strings.Contains(r, f) {
				t.Errorf("path-help of roles does not document %s", f)
			}
		}
	})

	t.Run("google-service-account", func(t *testing.T) {
		v := v.For(t)
		idp := fakeidp.NewJWTBearer(fakeidp.JWTBearerOptions{Key: &key.PublicKey, KeyID: "sa-key-7",
			Issuer: "vault@proj.iam.gserviceaccount.com", Google: true,
			Scope: "https://www.googleapis.com/auth/cloud-platform"})
		srv := httptest.NewServer(idp)
		t.Cleanup(srv.Close)
		raw, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "proj",
			"private_key_id": "sa-key-7", "private_key": keyPEM, "client_email": "vault@proj.iam.gserviceaccount.com",
			"token_uri": srv.URL + "/token"})
		saFile := filepath.Join(dir, "sa.json")
		writeFile(t, saFile, string(raw))
		v.Write("idp/config/gcp", "provider=google-service-account", "credentials=@"+saFile)
		v.Write("idp/roles/gcp", "config=gcp", "scopes=https://www.googleapis.com/auth/cloud-platform")
		s := v.ReadCreds("gcp")
		if !idp.Valid(s.String("access_token")) {
			t.Fatalf("token not issued; refusals: %v", idp.Refusals())
		}
		if f := idp.Requests()[0].Form; len(f) != 2 || idp.Requests()[0].Header.Get("Authorization") != "" {
			t.Errorf("request form has %d fields and Authorization %q; want grant_type and assertion only", len(f), idp.Requests()[0].Header.Get("Authorization"))
		}
		out := v.Run("read", "idp/config/gcp")
		if strings.Contains(out, "PRIVATE KEY") {
			t.Error("config read shows the private key")
		}
	})
}
