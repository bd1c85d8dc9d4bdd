package idptokens

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// Logins go through the token store's one door: they wait for, or are
// refused by, a single-active token's holding period, and store nothing
// for a role deleted while they complete.

// loginEnv is an authorization_code role "app" on config "generic", whose
// fake IdP issues refresh tokens and has a revocation endpoint; gate holds
// the first token request when set.
func loginEnv(t *testing.T, single bool, g *gate) *authEnv {
	t.Helper()
	e := newTestEnv(t)
	clock := &promiseClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	e.b.now, e.b.sleep = clock.Now, clock.Sleep
	idp := fakeidp.New(fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "app", ClientSecret: "app-secret", Scopes: []string{"read"},
		RefreshTokens: true, RedirectURIs: []string{vaultCallback}, TokenTTL: 10 * time.Minute})
	idp.SetClock(clock.Now)
	var h http.Handler = idp
	if g != nil {
		h = g.wrap(idp)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.ok(logical.UpdateOperation, "config/generic", map[string]any{
		"token_url": srv.URL + idp.TokenPath(), "auth_url": srv.URL + "/connect/authorize", "revocation_url": srv.URL + "/connect/revocation",
		"client_id": "app", "client_secret": "app-secret", "redirect_uris": vaultCallback, "single_active_token": single,
	})
	e.ok(logical.UpdateOperation, "roles/app", map[string]any{"config": "generic", "grant_type": "authorization_code", "scopes": "read"})
	return &authEnv{testEnv: e, idp: idp, base: srv.URL, role: "app"}
}

// callbackWrite completes a login from the CLI (a JSON answer).
func (a *authEnv) callbackWrite(q url.Values) (*logical.Response, error) {
	return a.do(logical.UpdateOperation, "callback", map[string]any{"code": q.Get("code"), "state": q.Get("state")})
}

// On a single-active config a second login while the first token is held
// under a lease is refused before its code is sent, naming when to log in
// again; the first token keeps being served, and after the hold a login
// completes.
func TestSecondLoginOnSingleActiveConfigWaitsForTheHold(t *testing.T) {
	a := loginEnv(t, true, nil)
	if resp, err := a.callbackWrite(a.login("app")); err != nil || resp.IsError() {
		t.Fatalf("first login: %v %v", err, respErr(resp))
	}
	lease := a.creds("app")
	first := lease.Data["access_token"].(string)
	leaseEnd := a.b.now().Add(lease.Secret.TTL)

	resp, err := a.callbackWrite(a.login("app"))
	if err != nil || !resp.IsError() || !strings.Contains(respErr(resp), "single_active_token") || !strings.Contains(respErr(resp), "held under leases until") {
		t.Fatalf("second login under a live lease: %v %q, want a refusal naming single_active_token and the hold", err, respErr(resp))
	}
	if n := a.idp.TokenRequestsByGrant("authorization_code"); n != 1 {
		t.Fatalf("%d code exchanges: the refused login's code was sent", n)
	}
	if again := a.creds("app").Data["access_token"]; again != first {
		t.Fatal("the refused login replaced the held token")
	}

	a.b.sleep(context.Background(), leaseEnd.Sub(a.b.now()))
	if resp, err := a.callbackWrite(a.login("app")); err != nil || resp.IsError() {
		t.Fatalf("login after the lease ended: %v %v", err, respErr(resp))
	}
	reqs := a.idp.Requests()
	if sent := reqs[len(reqs)-1].Time; sent.Before(leaseEnd) {
		t.Fatalf("the second code exchange went out %s before the lease ended", leaseEnd.Sub(sent))
	}
	if a.creds("app").Data["access_token"] == first {
		t.Fatal("the completed login's token is not served")
	}
}

// A callback whose code exchange is in flight when its role is deleted
// stores nothing, revokes what the IdP issued, and a role written again
// under the name needs a login of its own.
func TestCallbackRacingRoleDeleteStoresNothing(t *testing.T) {
	g := newGate("/connect/token")
	a := loginEnv(t, false, g)
	q := a.login("app")
	done := make(chan *logical.Response)
	go func() {
		resp, _ := a.callbackWrite(q)
		done <- resp
	}()
	<-g.arrived
	a.ok(logical.DeleteOperation, "roles/app", nil)
	g.open()
	resp := <-done
	if resp == nil || !resp.IsError() {
		t.Fatalf("the login completed for a deleted role: %v", resp)
	}
	if raw := a.stored("tokens/role/app"); raw != nil {
		t.Fatalf("storage holds a token for the deleted role: %d bytes", len(raw))
	}
	for _, tok := range a.idp.IssuedAccessTokens() {
		if _, killed := a.idp.KilledAt(tok); !killed {
			t.Fatal("the token issued for the deleted role was not revoked at the IdP")
		}
	}
	a.ok(logical.UpdateOperation, "roles/app", map[string]any{"config": "generic", "grant_type": "authorization_code", "scopes": "read"})
	a.fails(logical.ReadOperation, "creds/app", nil, "needs a login")
}
