package idptokens

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// renew asks the backend to renew a lease handed out at issued, as Vault's
// expiration manager does, with the caller's increment.
func (e *testEnv) renew(lease *logical.Response, issued time.Time, increment time.Duration) *logical.Response {
	e.t.Helper()
	s := *lease.Secret
	s.IssueTime, s.Increment = issued, increment
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Path: "creds/x", Secret: &s, Storage: e.storage})
	if err != nil {
		e.t.Fatalf("renew: %v", err)
	}
	return resp
}

// leaseEnd is where Vault puts a renewed lease's end: the TTL (or the
// caller's increment) from now, never past IssueTime+MaxTTL in whole
// seconds (framework.CalculateTTL).
func leaseEnd(r *logical.Response, issued, now time.Time) time.Time {
	ttl := r.Secret.TTL
	if r.Secret.Increment > 0 {
		ttl = r.Secret.Increment
	}
	end := now.Add(ttl)
	if bound := issued.Truncate(time.Second).Add(r.Secret.MaxTTL); r.Secret.MaxTTL > 0 && end.After(bound) {
		end = bound
	}
	return end
}

func renewableEnv(t *testing.T, ttl time.Duration) (*testEnv, *fakeidp.Server, *fakeclock.Clock) {
	t.Helper()
	clock := fakeclock.New(testT0)
	e := newTestEnv(t, withClock(clock))
	idp, url := startIdP(t, fakeidp.Options{ClientID: "app", ClientSecret: "secret", Scopes: []string{"read"}, TokenTTL: ttl})
	idp.SetClock(clock.Now)
	e.ok(logical.UpdateOperation, "config/c", map[string]any{"token_url": url, "client_id": "app", "client_secret": "secret"})
	e.ok(logical.UpdateOperation, "roles/x", map[string]any{"config": "c", "scopes": "read", "renewable_leases": true, "min_ttl": "10m"})
	return e, idp, clock
}

// A renewable lease is renewed up to what is left of the token's life and
// never past it, whatever increment the caller asks; the access token stays
// the same (it cannot be extended).
func TestRenewGrantsAtMostTheTokensRemainingLife(t *testing.T) {
	e, idp, clock := renewableEnv(t, time.Hour)
	issued := clock.Now()
	lease := e.creds("x")
	if !lease.Secret.Renewable || lease.Secret.MaxTTL != lease.Secret.TTL || lease.Secret.TTL > time.Hour-time.Second {
		t.Fatalf("lease renewable=%v ttl=%s max=%s; want renewable, max = ttl <= 59m59s", lease.Secret.Renewable, lease.Secret.TTL, lease.Secret.MaxTTL)
	}
	tokenEnd, _ := idp.ExpiresAt(lease.Data["access_token"].(string))
	if tag, _ := lease.Secret.InternalData["token"].(string); len(tag) != 16 {
		t.Fatalf("internal data %v: want a 16-character tag of the token", lease.Secret.InternalData)
	}
	for k, v := range lease.Secret.InternalData {
		if v == lease.Data["access_token"] {
			t.Fatalf("the lease's internal data %q holds the access token", k)
		}
	}
	for _, step := range []time.Duration{20 * time.Minute, 25 * time.Minute, 10 * time.Minute, 4*time.Minute + 50*time.Second} {
		clock.Advance(step)
		for _, inc := range []time.Duration{0, 24 * time.Hour} {
			r := e.renew(lease, issued, inc)
			if r.IsError() {
				t.Fatalf("renewal at %s: %v", clock.Now().Sub(issued), respErr(r))
			}
			if end := leaseEnd(r, issued, clock.Now()); end.After(tokenEnd.Add(-time.Second)) {
				t.Fatalf("renewal at %s (increment %s) ends the lease at %s, past the token's end %s less the skew",
					clock.Now().Sub(issued), inc, end.Format(time.TimeOnly), tokenEnd.Format(time.TimeOnly))
			}
			if r.Secret.TTL > tokenEnd.Sub(clock.Now()) {
				t.Fatalf("renewal TTL %s with %s left of the token", r.Secret.TTL, tokenEnd.Sub(clock.Now()))
			}
		}
	}
	if idp.TokenRequests() != 1 {
		t.Fatalf("renewals made %d IdP requests, want only the first read's", idp.TokenRequests())
	}
}

// Once the role holds another token (a drop here; the same after a role
// change or the next mint), the old lease is granted nothing further.
func TestRenewGrantsNothingOnceTheRoleHasAnotherToken(t *testing.T) {
	e, _, clock := renewableEnv(t, time.Hour)
	issued := clock.Now()
	lease := e.creds("x")
	e.ok(logical.UpdateOperation, "creds/x/drop", nil)
	clock.Advance(time.Minute)
	if r := e.renew(lease, issued, 0); !r.IsError() || !strings.Contains(respErr(r), "read") {
		t.Fatalf("renewal after a drop: %v, want an error that says to read again", r)
	}
	next := e.creds("x")
	if next.Data["access_token"] == lease.Data["access_token"] {
		t.Fatal("the drop kept the token")
	}
	if r := e.renew(lease, issued, 0); !r.IsError() {
		t.Fatalf("the old lease was renewed on the role's new token: ttl %s", r.Secret.TTL)
	}
	if r := e.renew(next, clock.Now(), 0); r.IsError() {
		t.Fatalf("the new lease was refused: %s", respErr(r))
	}
}

// Leases are not renewable by default, nor ever on a single_active_token
// config: a role write asking for it there is refused, and a role made
// renewable before its config became single-active gets non-renewable
// leases whose renewals are refused.
func TestRenewableLeasesOnlyWhereTheyKeepThePromise(t *testing.T) {
	e := newTestEnv(t)
	e.setupMWI(fakeidp.Options{})
	if lease := e.creds("mwi"); lease.Secret.Renewable {
		t.Fatal("a role without renewable_leases got a renewable lease")
	}
	m := setupMicroTek(t, 20*time.Second)
	m.fails(logical.UpdateOperation, "roles/x", map[string]any{"config": "mt", "renewable_leases": true}, "single_active_token")

	e2, _, clock := renewableEnv(t, time.Hour)
	lease := e2.creds("x")
	// A config write is refused while a role of it has renewable_leases, as
	// the role write is; once the role no longer asks for it, leases handed
	// out before stay renewable in Vault, so their renewals must be refused.
	msg := e2.fails(logical.UpdateOperation, "config/c", map[string]any{"single_active_token": true}, "single_active_token")
	if !strings.Contains(msg, "roles x have renewable_leases") {
		t.Errorf("the refusal %q does not name role x", msg)
	}
	e2.ok(logical.UpdateOperation, "roles/x", map[string]any{"config": "c", "scopes": "read", "renewable_leases": false, "min_ttl": "10m"})
	e2.ok(logical.UpdateOperation, "config/c", map[string]any{"single_active_token": true})
	clock.Advance(time.Minute)
	if r := e2.renew(lease, clock.Now().Add(-time.Minute), 0); !r.IsError() {
		t.Fatalf("a lease was renewed after its config became single-active: ttl %s", r.Secret.TTL)
	}
	if again := e2.creds("x"); again.Secret.Renewable {
		t.Fatal("a single-active config handed out a renewable lease")
	}
}

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

// Revoking a lease leaves the shared token cached for other leases.
func TestLeaseRevokeKeepsToken(t *testing.T) {
	e := newTestEnv(t)
	idp := e.setupMWI(fakeidp.Options{})
	resp := e.creds("mwi")
	_, err := e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RevokeOperation, Storage: e.storage, Secret: resp.Secret, Data: resp.Data,
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.creds("mwi").Data["access_token"] != resp.Data["access_token"] || idp.TokenRequests() != 1 {
		t.Fatal("revoking one lease dropped the shared token")
	}
}
