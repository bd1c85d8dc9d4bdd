package idptokens

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
)

// The generic grant: the config's client authentication, the scope form
// field, issuer defaulting to client_id, extra claims.
func TestJWTBearerGenericRole(t *testing.T) {
	e := newTestEnv(t)
	keyPEM, key := testkeys.RSA(t, 2048)
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
