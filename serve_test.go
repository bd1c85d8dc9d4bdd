package idptokens

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
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
	clock := fakeclock.New(testT0)
	e := newTestEnv(t, withClock(clock))
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

// While the IdP is down (answering 503, then gone altogether), a role whose
// cached token is still valid keeps being served; a role with no token gets
// an error that names the config, and nothing is stored for it.
func TestOutageServesCachedTokens(t *testing.T) {
	e := newTestEnv(t)
	idp := fakeidp.New(fakeidp.Options{Style: fakeidp.StyleMWI, ClientID: "client", ClientSecret: "s3cret+/:x",
		Username: mwiComposed, Password: mwiPassword})
	// Gone, the IdP drops each connection unanswered: its port stays held,
	// as a closed server's could be reused by another test's IdP.
	var gone atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gone.Load() {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		idp.ServeHTTP(w, r)
	}))
	defer srv.Close()
	e.ok(logical.UpdateOperation, "config/mwi", map[string]any{
		"provider": "mwi", "token_url": srv.URL + idp.TokenPath(), "client_id": "client", "client_secret": "s3cret+/:x",
		"access_code": mwiAccessCode, "username": mwiUser, "security_key": mwiSecurityKey, "password": mwiPassword,
	})
	e.ok(logical.UpdateOperation, "roles/warm", map[string]any{"config": "mwi", "scopes": "test_api"})
	e.ok(logical.UpdateOperation, "roles/cold", map[string]any{"config": "mwi", "scopes": "test_api"})
	tok := e.creds("warm").Data["access_token"]
	stored := len(e.tokenKeys())

	idp.FailNext(1000, http.StatusServiceUnavailable)
	for i := 0; i < 20; i++ {
		if got := e.creds("warm").Data["access_token"]; got != tok {
			t.Fatalf("read %d during a 503 outage returned another token", i)
		}
	}
	msg := e.fails(logical.ReadOperation, "creds/cold", nil, `config "mwi"`)
	if !strings.Contains(msg, "503") {
		t.Errorf("cold read during a 503 outage: %q does not mention the status", msg)
	}
	if n := idp.TokenRequests(); n != 1+backend.DefaultRetry.Attempts {
		t.Errorf("IdP saw %d requests, want 1 + %d tries of the cold read", n, backend.DefaultRetry.Attempts)
	}

	gone.Store(true)
	for i := 0; i < 20; i++ {
		if got := e.creds("warm").Data["access_token"]; got != tok {
			t.Fatalf("read %d with the IdP gone returned another token", i)
		}
	}
	msg = e.fails(logical.ReadOperation, "creds/cold", nil, `config "mwi"`)
	if !strings.Contains(msg, "could not be reached") {
		t.Errorf("cold read with the IdP gone: %q does not say it could not be reached", msg)
	}
	if n := len(e.tokenKeys()); n != stored {
		t.Errorf("storage holds %d tokens after failed cold reads, want %d", n, stored)
	}
}

// A cold read during an outage stores nothing and says which config failed.
func TestOutageColdReadStoresNothing(t *testing.T) {
	e := newTestEnv(t)
	idp := e.setupMWI(fakeidp.Options{})
	idp.FailNext(1000, http.StatusServiceUnavailable)
	msg := e.fails(logical.ReadOperation, "creds/mwi", nil, `IdP of config "mwi" answered HTTP 503`)
	for _, s := range []string{"s3cret", mwiPassword, mwiSecurityKey} {
		if strings.Contains(msg, s) {
			t.Errorf("error %q holds a secret", msg)
		}
	}
	if keys := e.tokenKeys(); len(keys) != 0 {
		t.Errorf("storage holds %v after a failed cold read, want no token", keys)
	}
	// Once the IdP is back, the next read works.
	idp.FailNext(0, 0)
	if tok := e.creds("mwi").Data["access_token"].(string); !idp.Valid(tok) {
		t.Error("the token after recovery is not valid at the IdP")
	}
}

// Single flight holds across retries: the IdP fails twice with 503 and then
// answers; 50 concurrent cold readers cause exactly 3 requests and all get
// the same token.
func TestSingleFlightDuringRetries(t *testing.T) {
	e := newTestEnv(t)
	idp := e.setupMWI(fakeidp.Options{})
	idp.FailNext(2, http.StatusServiceUnavailable)
	idp.SetDelay(20 * time.Millisecond) // let every reader arrive during the first try
	const readers = 50
	var wg sync.WaitGroup
	tokens := make([]string, readers)
	errs := make([]string, readers)
	start := make(chan struct{})
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			resp, err := e.do(logical.ReadOperation, "creds/mwi", nil)
			switch {
			case err != nil:
				errs[i] = err.Error()
			case resp.IsError():
				errs[i] = respErr(resp)
			default:
				tokens[i], _ = resp.Data["access_token"].(string)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	for i := range tokens {
		if errs[i] != "" {
			t.Fatalf("reader %d failed: %s", i, errs[i])
		}
		if tokens[i] != tokens[0] {
			t.Fatalf("reader %d got another token than reader 0", i)
		}
	}
	if n := idp.TokenRequests(); n != 3 {
		t.Errorf("IdP saw %d token requests, want 3 (two 503s and one success)", n)
	}
	if !idp.Valid(tokens[0]) {
		t.Error("the shared token is not valid at the IdP")
	}
}

// A role min_ttl past half-life must not mint while earlier leases still run
// for the rest of the token's life: every lease ends before the next mint.
func TestSingleActiveMinTTLNeverMintsUnderALease(t *testing.T) {
	m := setupMicroTek(t, 20*time.Second)
	m.ok(logical.UpdateOperation, "roles/x", map[string]any{"config": "mt", "min_ttl": 8})
	first := m.creds("x")
	old := first.Data["access_token"].(string)
	ends := []time.Time{m.leaseEnd(first)}
	if first.Secret.TTL > 11*time.Second {
		t.Fatalf("first lease %s: a 20s token with min_ttl 8s may be held 11s at most", first.Secret.TTL)
	}
	m.clock.Advance(5 * time.Second)
	second := m.creds("x")
	if second.Data["access_token"] != old {
		t.Fatal("a token with 15s left was replaced")
	}
	ends = append(ends, m.leaseEnd(second))
	// A reader whose min_ttl would kill every other holder's token.
	m.fails(logical.ReadOperation, "creds/x", map[string]any{"min_ttl": 9}, "min_ttl")
	m.clock.Advance(7500 * time.Millisecond)
	third := m.creds("x")
	if third.Data["access_token"] == old {
		t.Fatal("no new token after the horizon")
	}
	killed, dead := m.idp.KilledAt(old)
	if !dead {
		t.Fatal("MicroTek did not kill the old token")
	}
	for _, end := range ends {
		if killed.Before(end) {
			t.Fatalf("the old token died at %s while a lease ran until %s", killed.Format(time.TimeOnly), end.Format(time.TimeOnly))
		}
	}
	if m.idp.TokenRequests() != 2 {
		t.Fatalf("%d token requests, want 2", m.idp.TokenRequests())
	}
}

// A mint whose answer is lost (a gateway's 502, a hang-up after the IdP
// acted, a failed storage write) never leaves the killed token to be served.
func TestSingleActiveLostAnswerNeverServesTheKilledToken(t *testing.T) {
	for name, lose := range map[string]func(m *microTekEnv){
		"502 from a gateway":    func(m *microTekEnv) { m.idp.LoseNextAnswers(3, fakeidp.LossGateway) },
		"hang-up after minting": func(m *microTekEnv) { m.idp.LoseNextAnswers(3, fakeidp.LossHangUp) },
		"storage fails the save": func(m *microTekEnv) {
			// The retirement is stored; the new token's save fails.
			fs := m.storage.(*faultyStorage)
			fs.skipPuts, fs.failPuts = 1, 1
		},
	} {
		t.Run(name, func(t *testing.T) {
			m := setupMicroTek(t, 20*time.Second)
			m.storage = &faultyStorage{Storage: m.storage}
			m.ok(logical.UpdateOperation, "roles/x", map[string]any{"config": "mt"})
			old := m.creds("x").Data["access_token"].(string)
			m.clock.Advance(19 * time.Second)
			lose(m)
			if resp, err := m.do(logical.ReadOperation, "creds/x", nil); err == nil && !resp.IsError() {
				t.Fatalf("the read whose mint was lost succeeded: %v", resp.Data["access_token"] == old)
			}
			if m.idp.Valid(old) {
				t.Fatal("the fault did not reach the IdP's mint")
			}
			resp := m.creds("x")
			if tok := resp.Data["access_token"].(string); tok == old || !m.idp.Valid(tok) {
				t.Fatalf("after the lost answer the read got the old token=%v valid=%v", tok == old, m.idp.Valid(tok))
			}
		})
	}
}

// A token too short-lived for the shortest lease (MicroTek answering
// expires_in=1, or a slow answer that used up most of the token's life): the
// lease handed out with it is a second long at least, so the next mint must
// wait until that lease has ended, not only until expiry less the reserve.
func TestSingleActiveShortLivedTokenOutlivesItsLease(t *testing.T) {
	m := setupMicroTek(t, time.Second)
	m.ok(logical.UpdateOperation, "roles/x", map[string]any{"config": "mt", "min_ttl": 10})
	first := m.creds("x")
	old := first.Data["access_token"].(string)
	end := m.leaseEnd(first)
	m.clock.Advance(600 * time.Millisecond)
	if next := m.creds("x"); next.Data["access_token"] == old {
		t.Fatal("no new token after the old one expired")
	}
	killed, dead := m.idp.KilledAt(old)
	if !dead {
		t.Fatal("MicroTek did not kill the old token")
	}
	if killed.Before(end) {
		t.Fatalf("the old token died at %s while its lease ran until %s", killed.Format(time.StampMilli), end.Format(time.StampMilli))
	}
}

// A performance secondary (for a replicated mount), a performance standby
// and a DR secondary never ask the IdP: Vault forwards on ErrReadOnly. A
// local mount of a performance secondary is its own and mints.
func TestReadOnlyNodesNeverMint(t *testing.T) {
	cases := []struct {
		name  string
		state consts.ReplicationState
		local bool
		mints bool
	}{
		{"performance secondary", consts.ReplicationPerformanceSecondary, false, false},
		{"performance standby", consts.ReplicationPerformanceStandby, false, false},
		{"DR secondary", consts.ReplicationDRSecondary, false, false},
		{"local mount of a performance secondary", consts.ReplicationPerformanceSecondary, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := setupMicroTek(t, time.Hour)
			m.ok(logical.UpdateOperation, "roles/x", map[string]any{"config": "mt"})
			m.sys.ReplicationStateVal, m.sys.LocalMountVal = c.state, c.local
			_, err := m.do(logical.ReadOperation, "creds/x", nil)
			if c.mints {
				if err != nil || m.idp.TokenRequests() != 1 {
					t.Fatalf("err=%v requests=%d, want a token", err, m.idp.TokenRequests())
				}
				return
			}
			if !errors.Is(err, logical.ErrReadOnly) || m.idp.TokenRequests() != 0 {
				t.Fatalf("err=%v requests=%d, want ErrReadOnly before any IdP request", err, m.idp.TokenRequests())
			}
		})
	}
}
