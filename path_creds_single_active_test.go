package idptokens

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// The creds path against a single-live-token IdP (MicroTek): each case of
// issue 10, reproduced as it was found, on a fake clock.

const mtClient = "00000000-0000-0000-0000-000000000000"

// microTekEnv is a backend, a MicroTek fake with ttl-long tokens and one
// fake clock for both.
type microTekEnv struct {
	*testEnv
	idp   *fakeidp.Server
	url   string
	clock *promiseClock
}

func setupMicroTek(t *testing.T, ttl time.Duration) *microTekEnv {
	t.Helper()
	e := newTestEnv(t)
	clock := &promiseClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	e.b.now, e.b.sleep = clock.Now, clock.Sleep
	idp, url := startIdP(t, fakeidp.Options{Style: fakeidp.StyleMicroTek, ClientID: mtClient, ClientSecret: "pass+/:%wörd", TokenTTL: ttl,
		Scopes: []string{"public-api", "reports"}})
	idp.SetClock(clock.Now)
	e.ok(logical.UpdateOperation, "config/mt", map[string]any{"provider": "microtek", "token_url": url, "client_id": mtClient, "client_secret": "pass+/:%wörd"})
	return &microTekEnv{testEnv: e, idp: idp, url: url, clock: clock}
}

// leaseEnd is when a lease just handed out ends.
func (m *microTekEnv) leaseEnd(resp *logical.Response) time.Time {
	return m.clock.Now().Add(resp.Secret.TTL)
}

// A role min_ttl past half-life used to mint while earlier leases still ran
// for the rest of the token's life. Now leases end before the next mint.
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
	// The reader that used to kill every other holder's token.
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

// Admin writes that would make two roles ask differently, or a second
// config for the client, are refused and store nothing.
func TestSingleActiveWritesThatSplitTheTokenAreRefused(t *testing.T) {
	m := setupMicroTek(t, time.Hour)
	m.ok(logical.UpdateOperation, "roles/a", map[string]any{"config": "mt"})
	m.ok(logical.UpdateOperation, "roles/b", map[string]any{"config": "mt", "scopes": "public-api"})
	before, _ := m.storage.Get(context.Background(), "config/mt")
	msg := m.fails(logical.UpdateOperation, "config/mt", map[string]any{"scopes": "public-api,reports"}, "single_active_token")
	if !strings.Contains(msg, "a") || !strings.Contains(msg, `b`) || !strings.Contains(msg, "] vs [") {
		t.Fatalf("error %q should name the roles on each side", msg)
	}
	after, _ := m.storage.Get(context.Background(), "config/mt")
	if string(before.Value) != string(after.Value) {
		t.Fatal("the refused config write was stored")
	}
	m.fails(logical.UpdateOperation, "roles/b", map[string]any{"scopes": "public-api reports"}, "single_active_token")
	for _, url := range []string{m.url, strings.ToUpper(m.url[:4]) + m.url[4:] + "/"} {
		m.fails(logical.UpdateOperation, "config/mt2", map[string]any{"provider": "microtek", "token_url": url, "client_id": mtClient, "client_secret": "x"}, "client_id")
	}
	if raw, _ := m.storage.Get(context.Background(), "config/mt2"); raw != nil {
		t.Fatal("a second config for the client was stored")
	}
	// Another client of the same IdP is another client.
	m.ok(logical.UpdateOperation, "config/mt2", map[string]any{"provider": "microtek", "token_url": m.url, "client_id": "11111111-0000-0000-0000-000000000000", "client_secret": "x"})
}

// A generic config can say single_active_token=true; the read shows it, and
// its roles share one token.
func TestSingleActiveTokenConfigField(t *testing.T) {
	e := newTestEnv(t)
	_, url := startIdP(t, fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "app", ClientSecret: "s", Scopes: []string{"r"}})
	e.ok(logical.UpdateOperation, "config/c", map[string]any{"token_url": url, "client_id": "app", "client_secret": "s", "single_active_token": true})
	if e.ok(logical.ReadOperation, "config/c", nil).Data["single_active_token"] != true {
		t.Fatal("the read does not show single_active_token")
	}
	e.ok(logical.UpdateOperation, "roles/one", map[string]any{"config": "c", "scopes": "r"})
	e.ok(logical.UpdateOperation, "roles/two", map[string]any{"config": "c", "scopes": "r"})
	if e.creds("one").Data["access_token"] != e.creds("two").Data["access_token"] {
		t.Fatal("roles of a single-active config do not share the token")
	}
	mt := setupMicroTek(t, time.Hour)
	if mt.ok(logical.ReadOperation, "config/mt", nil).Data["single_active_token"] != true {
		t.Fatal("provider=microtek does not set single_active_token")
	}
	resp := mt.ok(logical.UpdateOperation, "config/mt", map[string]any{"single_active_token": false})
	if resp == nil || len(resp.Warnings) == 0 {
		t.Fatal("turning single_active_token off drops the shared token, and the answer must say so")
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

// The auth-state sweep does nothing where storage is read-only.
func TestSweepSkipsReadOnlyNodes(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	a.begin("myid", nil)
	a.moveClock(time.Hour)
	a.sys.ReplicationStateVal = consts.ReplicationPerformanceSecondary
	if err := a.b.sweepAuthStates(context.Background(), &logical.Request{Storage: a.storage}); err != nil {
		t.Fatal(err)
	}
	if len(a.storedStates()) != 1 {
		t.Fatal("the sweep deleted on a performance secondary")
	}
	a.sys.ReplicationStateVal = 0
	if err := a.b.sweepAuthStates(context.Background(), &logical.Request{Storage: a.storage}); err != nil || len(a.storedStates()) != 0 {
		t.Fatalf("the active node's sweep: %v, %d states left", err, len(a.storedStates()))
	}
}

// request_timeout is the one bound of a token request: it governs every
// try and wait, and the HTTP client; values outside 1s..90s are refused.
func TestRequestTimeoutIsOneBound(t *testing.T) {
	m := setupMicroTek(t, time.Hour)
	m.ok(logical.UpdateOperation, "config/mt", map[string]any{"request_timeout": 45})
	st, err := m.b.config(context.Background(), m.storage, "mt")
	if err != nil {
		t.Fatal(err)
	}
	if st.endpoint.Retry.MaxElapsed != 45*time.Second || st.endpoint.HTTP.Timeout != 45*time.Second {
		t.Fatalf("retry bound %s, HTTP timeout %s; want both 45s", st.endpoint.Retry.MaxElapsed, st.endpoint.HTTP.Timeout)
	}
	m.fails(logical.UpdateOperation, "config/mt", map[string]any{"request_timeout": 91}, "request_timeout")
	m.ok(logical.UpdateOperation, "config/mt", map[string]any{"request_timeout": 0})
	st, _ = m.b.config(context.Background(), m.storage, "mt")
	if st.endpoint.Retry.MaxElapsed != backend.DefaultRequestTimeout || st.endpoint.HTTP.Timeout != backend.DefaultRequestTimeout {
		t.Fatal("request_timeout=0 does not restore the default bound")
	}
}

// A role deleted while its token is being minted leaves no token behind:
// the new one is removed from storage and revoked at the IdP.
func TestRoleDeletedDuringMintLeavesNoToken(t *testing.T) {
	e := newTestEnv(t)
	idp, url := startIdP(t, fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "app", ClientSecret: "s", Scopes: []string{"r"}, RefreshTokens: true})
	base := strings.TrimSuffix(url, idp.TokenPath())
	e.ok(logical.UpdateOperation, "config/c", map[string]any{"token_url": url, "revocation_url": base + "/connect/revocation", "client_id": "app", "client_secret": "s"})
	e.ok(logical.UpdateOperation, "roles/gone", map[string]any{"config": "c", "scopes": "r"})
	idp.SetDelay(300 * time.Millisecond)
	done := make(chan *logical.Response, 1)
	go func() {
		resp, _ := e.do(logical.ReadOperation, "creds/gone", nil)
		done <- resp
	}()
	time.Sleep(100 * time.Millisecond) // the mint is in flight
	e.ok(logical.DeleteOperation, "roles/gone", nil)
	resp := <-done
	if resp == nil || !resp.IsError() || !strings.Contains(respErr(resp), `no role named "gone"`) {
		t.Fatalf("the read racing the delete answered %v", resp)
	}
	if keys := e.tokenKeys(); len(keys) != 0 {
		t.Fatalf("storage holds %v after the delete", keys)
	}
	if idp.TokenRequests() != 1 {
		t.Fatalf("%d token requests", idp.TokenRequests())
	}
	for _, tok := range idp.IssuedAccessTokens() {
		if idp.Valid(tok) {
			t.Fatal("the token minted for the deleted role was not revoked")
		}
	}
}

// Hints name the mount the request came in on.
func TestHintsNameTheMount(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	resp, err := a.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.ReadOperation, Path: "creds/myid", Storage: a.storage, MountPoint: "team-a/tokens/",
	})
	if err != nil || !strings.Contains(respErr(resp), "vault write -f team-a/tokens/auth-url/myid") {
		t.Fatalf("needs-login hint: %v %q", err, respErr(resp))
	}
	resp, _ = a.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.UpdateOperation, Path: "roles/r", Storage: a.storage, MountPoint: "team-a/tokens/", Data: map[string]any{"config": "nope"},
	})
	if !strings.Contains(respErr(resp), "write team-a/tokens/config/nope first") {
		t.Fatalf("missing-config hint: %q", respErr(resp))
	}
}

// A refused refresh token of an authorization_code role is forgotten: the
// first read after the refusal says "needs a login", and so does the next,
// without sending the dead refresh token again.
func TestAuthCodeRefusedRefreshIsForgotten(t *testing.T) {
	a := setupOAuth2Refresh(t)
	a.callbackGET(a.login("app"))
	a.creds("app")
	a.idp.RevokeAll()
	a.moveClock(61 * time.Minute)
	a.fails(logical.ReadOperation, "creds/app", nil, "needs a login")
	sent := a.idp.TokenRequests()
	a.fails(logical.ReadOperation, "creds/app", nil, "needs a login")
	if n := a.idp.TokenRequests(); n != sent {
		t.Fatalf("the second read sent %d more requests (the dead refresh token again)", n-sent)
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
