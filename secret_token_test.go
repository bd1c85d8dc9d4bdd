package idptokens

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// Revoking (or expiring) a lease makes no request to the IdP and keeps the
// shared token: every other lease of it still holds a working token, and
// the next read is a cache hit. On raft, Vault calls Revoke once for every
// lease that expires, so this is also what keeps expiry cheap.
func TestRevokeNeverCallsTheIdPForASharedToken(t *testing.T) {
	e := newTestEnv(t)
	idp := fakeidp.New(fakeidp.Options{ClientID: "app", ClientSecret: "secret", Scopes: []string{"read"}})
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		idp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.ok(logical.UpdateOperation, "config/c", map[string]any{"token_url": srv.URL + idp.TokenPath(),
		"revocation_url": srv.URL + "/connect/revocation", "client_id": "app", "client_secret": "secret"})
	e.ok(logical.UpdateOperation, "roles/x", map[string]any{"config": "c", "scopes": "read"})
	leases := []*logical.Response{e.creds("x"), e.creds("x"), e.creds("x")}
	tok := leases[0].Data["access_token"].(string)
	before := calls.Load()
	for _, l := range leases[:2] {
		resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RevokeOperation, Path: "creds/x", Secret: l.Secret, Storage: e.storage})
		if err != nil || (resp != nil && resp.IsError()) {
			t.Fatalf("revoke: %v %v", err, resp)
		}
	}
	if n := calls.Load() - before; n != 0 {
		t.Fatalf("revoking two leases made %d requests to the IdP, want 0", n)
	}
	if !idp.Valid(tok) {
		t.Fatal("the shared token stopped working when two of its leases were revoked")
	}
	if again := e.creds("x"); again.Data["access_token"] != tok || idp.TokenRequests() != 1 {
		t.Fatal("after the revocations the next read did not get the cached token")
	}
}
