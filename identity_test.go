package idptokens

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/storagecount"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
)

// Per-person tokens: each Vault entity its own login and token under one
// role, keyed by the request's entity and never by a name the caller picks.

const userpassAccessor = "auth_userpass_0a1b2c"

// person is a Vault entity with a userpass alias of its name.
func person(id, name string, metadata map[string]string) *logical.Entity {
	return &logical.Entity{ID: id, Name: name, Metadata: metadata,
		Aliases: []*logical.Alias{{MountAccessor: userpassAccessor, Name: name, ID: id + "-alias"}}}
}

var (
	alice = person("0c7a2f6e-1111-4aaa-8aaa-000000000001", "alice", map[string]string{"email": "alice@example.com"})
	bob   = person("0c7a2f6e-2222-4bbb-8bbb-000000000002", "bob", map[string]string{"email": "bob@example.com"})
	carol = person("0c7a2f6e-3333-4ccc-8ccc-000000000003", "carol", nil)
)

// peopleEnv: a per_entity authorization_code role "people" (scopes openid
// read) on config "oidc", whose fake OpenID provider signs RS256 ID tokens
// naming who logged in, with refresh tokens and revocation.
type peopleEnv struct {
	*authEnv
	clock *fakeclock.Clock
}

func newPeopleEnv(t *testing.T, role map[string]any) *peopleEnv {
	t.Helper()
	clock := fakeclock.New(testT0)
	e := newTestEnv(t, withClock(clock), withEntities(alice, bob, carol))
	idp := fakeidp.New(fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "people-app", ClientSecret: "people-secret", Scopes: []string{"openid", "read"},
		RefreshTokens: true, OIDC: true, RedirectURIs: []string{vaultCallback}, TokenTTL: 10 * time.Minute})
	idp.SetClock(clock.Now)
	srv := httptest.NewServer(idp)
	t.Cleanup(srv.Close)
	idp.SetIssuer(srv.URL)
	e.ok(logical.UpdateOperation, "config/oidc", map[string]any{"issuer": srv.URL, "client_id": "people-app", "client_secret": "people-secret",
		"redirect_uris": vaultCallback})
	data := map[string]any{"config": "oidc", "grant_type": "authorization_code", "scopes": "openid,read", "per_entity": true}
	for k, v := range role {
		data[k] = v
	}
	e.ok(logical.UpdateOperation, "roles/people", data)
	return &peopleEnv{authEnv: &authEnv{testEnv: e, idp: idp, base: srv.URL, role: "people"}, clock: clock}
}

// loginAs: entity begins a login (auth-url), and who completes it at the
// IdP's form; the callback's answer.
func (p *peopleEnv) loginAs(entity *logical.Entity, who string) *logical.Response {
	p.t.Helper()
	resp := p.okAs(entity.ID, logical.UpdateOperation, "auth-url/people", nil)
	u, err := url.Parse(resp.Data["url"].(string))
	if err != nil {
		p.t.Fatal(err)
	}
	q := u.Query()
	q.Set("fake_user", who)
	u.RawQuery = q.Encode()
	back := p.browse(u)
	cb, err := p.do(logical.UpdateOperation, "callback", map[string]any{"code": back.Get("code"), "state": back.Get("state")})
	if err != nil {
		p.t.Fatal(err)
	}
	return cb
}

func (p *peopleEnv) tokenOf(entity *logical.Entity) string {
	p.t.Helper()
	return p.okAs(entity.ID, logical.ReadOperation, "creds/people", nil).Data["access_token"].(string)
}

// Each person who logged in reads a token acting as themselves; one who did
// not is told to log in; a token without an entity is refused, naming why.
func TestPerEntityTokensAreTheirOwn(t *testing.T) {
	p := newPeopleEnv(t, nil)
	if cb := p.loginAs(alice, "alice"); cb.IsError() {
		t.Fatalf("alice's login: %v", respErr(cb))
	}
	if cb := p.loginAs(bob, "bob"); cb.IsError() {
		t.Fatalf("bob's login: %v", respErr(cb))
	}
	aliceTok, bobTok := p.tokenOf(alice), p.tokenOf(bob)
	if p.idp.OwnerOf(aliceTok) != "alice" || p.idp.OwnerOf(bobTok) != "bob" {
		t.Fatalf("alice's token acts as %q, bob's as %q", p.idp.OwnerOf(aliceTok), p.idp.OwnerOf(bobTok))
	}
	unleased := p.okAs(alice.ID, logical.ReadOperation, "token/people", nil)
	if unleased.Data["access_token"] != aliceTok {
		t.Fatal("token/people gave alice another token than creds/people")
	}
	// A person's token is a rotating secret like any: Agent re-reads it by ttl.
	if answerTTL(t, unleased); unleased.Data["rotation_period"] == nil || answerRotation(t, unleased).IsZero() {
		t.Fatalf("token/people for alice lacks the fields of a rotating secret: %v", unleased.Data)
	}
	p.failsAs(carol.ID, logical.ReadOperation, "creds/people", nil, "holds for yours no token")
	p.failsAs(carol.ID, logical.ReadOperation, "creds/people", nil, "vault write -f idp/auth-url/people")
	for _, path := range []string{"creds/people", "token/people", "auth-url/people", "creds/people/drop"} {
		var op logical.Operation = logical.ReadOperation
		if path != "creds/people" && path != "token/people" {
			op = logical.UpdateOperation
		}
		p.failsAs("", op, path, nil, "this Vault token has no entity")
	}
	// A person's drop is their own.
	p.okAs(alice.ID, logical.UpdateOperation, "creds/people/drop", nil)
	p.failsAs(alice.ID, logical.ReadOperation, "creds/people", nil, "needs a login")
	if p.tokenOf(bob) != bobTok {
		t.Fatal("alice's drop dropped bob's token")
	}
	if _, killed := p.idp.KilledAt(aliceTok); !killed {
		t.Fatal("alice's dropped token was not revoked at the IdP")
	}
	// After expiry each refreshes into a token of their own.
	p.clock.Advance(11 * time.Minute)
	fresh := p.tokenOf(bob)
	if fresh == bobTok || p.idp.OwnerOf(fresh) != "bob" || p.idp.TokenRequestsByGrant("refresh_token") != 1 {
		t.Fatalf("bob after expiry: new=%v owner %q, %d refreshes", fresh != bobTok, p.idp.OwnerOf(fresh), p.idp.TokenRequestsByGrant("refresh_token"))
	}
}

// The operator lists the people of the role and forgets one: that
// person's token is revoked at the IdP and they must log in again.
func TestLoginsListAndDelete(t *testing.T) {
	p := newPeopleEnv(t, nil)
	p.loginAs(alice, "alice")
	p.loginAs(bob, "bob")
	bobTok := p.tokenOf(bob)
	p.okAs(carol.ID, logical.UpdateOperation, "auth-url/people", nil) // pending
	resp := p.ok(logical.ListOperation, "logins/people/", nil)
	keys, _ := resp.Data["keys"].([]string)
	if len(keys) != 3 {
		t.Fatalf("logins list %v, want alice, bob and carol", keys)
	}
	info := resp.Data["key_info"].(map[string]any)
	if a := info[alice.ID].(map[string]any); a["entity_name"] != "alice" || a["refresh_token"] != true || a["expires_at"] == nil {
		t.Fatalf("alice's key_info %v", a)
	}
	if c := info[carol.ID].(map[string]any); c["pending_login"] != "authorization_code" || c["expires_at"] != nil {
		t.Fatalf("carol's key_info %v, want a pending login and no token", c)
	}
	p.ok(logical.DeleteOperation, "logins/people/"+bob.ID, nil)
	if _, killed := p.idp.KilledAt(bobTok); !killed {
		t.Fatal("the forgotten token was not revoked at the IdP")
	}
	p.failsAs(bob.ID, logical.ReadOperation, "creds/people", nil, "needs a login")
	if p.idp.OwnerOf(p.tokenOf(alice)) != "alice" {
		t.Fatal("forgetting bob touched alice")
	}
	p.fails(logical.ListOperation, "logins/nope/", nil, "no role named")
}

// Pending logins are bounded per person: one cannot push out another's.
func TestPerEntityPendingLoginsBoundedPerPerson(t *testing.T) {
	p := newPeopleEnv(t, nil)
	p.okAs(bob.ID, logical.UpdateOperation, "auth-url/people", nil)
	for range 5 {
		p.okAs(alice.ID, logical.UpdateOperation, "auth-url/people", nil)
	}
	if n := len(p.storedStates()); n != 3+1 {
		t.Fatalf("%d pending states, want alice's 3 and bob's 1", n)
	}
	resp := p.ok(logical.ListOperation, "logins/people/", nil)
	if info := resp.Data["key_info"].(map[string]any); info[bob.ID] == nil {
		t.Fatal("alice's logins pushed out bob's")
	}
}

// With bound_subject, a login lands only under its own person: when Alice
// begins it and Bob completes it at the IdP, nothing is stored, the token
// is revoked, the page says why and the refusal is counted.
// The threat bound_subject closes, as the README's Security section states
// it: without it, a login URL Alice began and Bob completed leaves Alice's
// entity holding Bob's token.
func TestWithoutBoundSubjectASentLoginURLHoldsWhoeverCompletedIt(t *testing.T) {
	p := newPeopleEnv(t, nil)
	if cb := p.loginAs(alice, "bob"); cb.IsError() {
		t.Fatalf("alice's login completed by bob: %v", respErr(cb))
	}
	if owner := p.idp.OwnerOf(p.tokenOf(alice)); owner != "bob" {
		t.Fatalf("alice's entity holds a token of %q, want bob's", owner)
	}
	p.failsAs(bob.ID, logical.ReadOperation, "creds/people", nil, "needs a login")
}

func TestBoundSubjectRefusesSomeoneElsesLogin(t *testing.T) {
	p := newPeopleEnv(t, map[string]any{"bound_subject": "{{identity.entity.aliases." + userpassAccessor + ".name}}"})
	cb := p.loginAs(alice, "bob")
	if !cb.IsError() || !strings.Contains(respErr(cb), "someone else") {
		t.Fatalf("alice's login completed by bob: %q, want a refusal", respErr(cb))
	}
	for _, tok := range p.idp.IssuedAccessTokens() {
		if _, killed := p.idp.KilledAt(tok); !killed {
			t.Fatal("the token of the refused login was not revoked")
		}
	}
	p.failsAs(alice.ID, logical.ReadOperation, "creds/people", nil, "needs a login")
	if n := p.metricsJSON().Configs["oidc"].PerEntity["people"].Logins[backend.LoginRefusedSubject]; n != 1 {
		t.Fatalf("refused logins counted %d, want 1", n)
	}
	if cb := p.loginAs(alice, "alice"); cb.IsError() {
		t.Fatalf("alice's own login: %v", respErr(cb))
	}
	if p.idp.OwnerOf(p.tokenOf(alice)) != "alice" {
		t.Fatal("alice's own login is not hers")
	}
	// The URL carried a nonce, and the ID token had to carry it back.
	resp := p.okAs(alice.ID, logical.UpdateOperation, "auth-url/people", nil)
	u, _ := url.Parse(resp.Data["url"].(string))
	if u.Query().Get("nonce") == "" {
		t.Fatal("a bound_subject login URL without a nonce")
	}
}

// per_entity and bound_subject are refused where they cannot hold.
func TestPerEntityRefusals(t *testing.T) {
	p := newPeopleEnv(t, nil)
	for _, c := range []struct {
		data map[string]any
		want string
	}{
		{map[string]any{"config": "oidc", "grant_type": "client_credentials", "per_entity": true}, "per_entity: is for authorization_code and device_code"},
		{map[string]any{"config": "oidc", "grant_type": "authorization_code", "scopes": "openid", "bound_subject": "{{identity.entity.name}}"}, "bound_subject: is for per_entity roles"},
		{map[string]any{"config": "oidc", "grant_type": "authorization_code", "scopes": "read", "per_entity": true, "bound_subject": "{{identity.entity.name}}"}, "openid"},
		{map[string]any{"config": "oidc", "grant_type": "authorization_code", "scopes": "openid", "per_entity": true, "bound_subject": "{{identity.entity.name}"}, "bound_subject: the template does not parse"},
		{map[string]any{"config": "oidc", "grant_type": "authorization_code", "scopes": "openid", "per_entity": true, "bound_subject": "{{identity.groups.names}}"}, "bound_subject"},
		{map[string]any{"config": "oidc", "grant_type": "authorization_code", "per_entity": true, "login_idle_ttl": "10s"}, "login_idle_ttl"},
	} {
		p.fails(logical.UpdateOperation, "roles/r", c.data, c.want)
	}
	_, mtURL := startIdP(t, fakeidp.Options{Style: fakeidp.StyleMicroTek, ClientID: mtClient, ClientSecret: mtClientSecret})
	p.ok(logical.UpdateOperation, "config/sa", map[string]any{"token_url": mtURL, "auth_url": p.base + "/connect/authorize", "client_id": mtClient,
		"client_secret": mtClientSecret, "single_active_token": true, "redirect_uris": vaultCallback})
	p.fails(logical.UpdateOperation, "roles/r", map[string]any{"config": "sa", "grant_type": "authorization_code", "per_entity": true}, "single_active_token")
	p.fails(logical.UpdateOperation, "config/oidc", map[string]any{"single_active_token": true}, "people")
	if raw := p.stored(rolePrefix + "r"); raw != nil {
		t.Fatal("a refused role was stored")
	}
}

// Deleting the role drops every person's token and pending login.
func TestPerEntityRoleDeleteDropsEveryPerson(t *testing.T) {
	p := newPeopleEnv(t, nil)
	p.loginAs(alice, "alice")
	p.loginAs(bob, "bob")
	p.okAs(carol.ID, logical.UpdateOperation, "auth-url/people", nil)
	p.ok(logical.DeleteOperation, "roles/people", nil)
	keys, err := logical.CollectKeys(context.Background(), p.storage)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, "people") || strings.HasPrefix(k, authStatePrefix) {
			t.Errorf("storage still holds %s after the role's delete", k)
		}
	}
	for _, tok := range p.idp.IssuedAccessTokens() {
		if _, killed := p.idp.KilledAt(tok); !killed {
			t.Error("a person's token of the deleted role was not revoked")
		}
	}
}

// The sweep forgets expired tokens without a refresh token and tokens idle
// past login_idle_ttl, and asks the IdP for no token.
func TestSweepForgetsExpiredAndIdlePeople(t *testing.T) {
	p := newPeopleEnv(t, map[string]any{"login_idle_ttl": "1h"})
	p.loginAs(alice, "alice")
	p.loginAs(bob, "bob")
	p.clock.Advance(30 * time.Minute)
	p.tokenOf(bob) // refreshed, and read: bob is not idle
	requests := p.idp.TokenRequests()
	p.clock.Advance(45 * time.Minute)
	if err := p.b.periodic(context.Background(), &logical.Request{Storage: p.storage}); err != nil {
		t.Fatal(err)
	}
	if p.idp.TokenRequests() != requests {
		t.Fatalf("the sweep made %d token requests", p.idp.TokenRequests()-requests)
	}
	if p.stored("tokens/entity/people/"+alice.ID) != nil {
		t.Fatal("alice's token, unread for 75 minutes with login_idle_ttl 1h, is still stored")
	}
	if p.stored("tokens/entity/people/"+bob.ID) == nil {
		t.Fatal("bob's token, read 45 minutes ago, was swept")
	}
}

// A jwt_bearer role whose subject is a template gets one token per resolved
// subject, each for its own person, the second read from the cache; an
// entity without the value is told which field.
func TestJWTSubjectTemplates(t *testing.T) {
	e := newTestEnv(t, withEntities(alice, bob, carol))
	keyPEM, key := testkeys.RSA(t, 2048)
	idp := fakeidp.NewJWTBearer(fakeidp.JWTBearerOptions{Key: &key.PublicKey, Issuer: "svc", Subjects: []string{"alice@example.com", "bob@example.com"},
		Audience: "https://as.example/token"})
	srv := httptest.NewServer(idp)
	t.Cleanup(srv.Close)
	e.ok(logical.UpdateOperation, "config/as", map[string]any{"token_url": srv.URL + "/token", "client_id": "svc", "client_auth": "none", "private_key": keyPEM})
	e.ok(logical.UpdateOperation, "roles/mail", map[string]any{"config": "as", "grant_type": "jwt_bearer", "jwt_audience": "https://as.example/token",
		"jwt_subject": "{{identity.entity.metadata.email}}"})
	a := e.okAs(alice.ID, logical.ReadOperation, "creds/mail", nil).Data["access_token"].(string)
	b := e.okAs(bob.ID, logical.ReadOperation, "creds/mail", nil).Data["access_token"].(string)
	if idp.SubjectOf(a) != "alice@example.com" || idp.SubjectOf(b) != "bob@example.com" {
		t.Fatalf("subjects %q and %q", idp.SubjectOf(a), idp.SubjectOf(b))
	}
	if again := e.okAs(alice.ID, logical.ReadOperation, "creds/mail", nil).Data["access_token"]; again != a || len(idp.Requests()) != 2 {
		t.Fatalf("alice's second read: same %v, %d requests, want her cached token", again == a, len(idp.Requests()))
	}
	e.failsAs(carol.ID, logical.ReadOperation, "creds/mail", nil, "jwt_subject")
	e.failsAs("", logical.ReadOperation, "creds/mail", nil, "no entity")
}

// A device login of a per_entity role is the beginner's: the poll stores
// the token for the entity that asked for the code, nobody else.
func TestPerEntityDeviceLogin(t *testing.T) {
	clock := fakeclock.New(testT0)
	e := newTestEnv(t, withClock(clock), withEntities(alice, bob))
	e.b.devices.storage = nil // polls driven by the test
	idp := fakeidp.New(fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "tv", ClientSecret: "tv-secret", Scopes: []string{"read"},
		DeviceCodes: true, RefreshTokens: true, TokenTTL: 10 * time.Minute})
	idp.SetClock(clock.Now)
	srv := httptest.NewServer(idp)
	t.Cleanup(srv.Close)
	e.ok(logical.UpdateOperation, "config/tv", map[string]any{"token_url": srv.URL + idp.TokenPath(), "device_authorization_url": srv.URL + "/device",
		"client_id": "tv", "client_secret": "tv-secret"})
	e.ok(logical.UpdateOperation, "roles/tv", map[string]any{"config": "tv", "grant_type": "device_code", "scopes": "read", "per_entity": true})
	uc := e.okAs(alice.ID, logical.UpdateOperation, "device-code/tv", nil).Data["user_code"].(string)
	e.failsAs(bob.ID, logical.ReadOperation, "creds/tv", nil, "needs a device login")
	msg := e.failsAs(alice.ID, logical.ReadOperation, "creds/tv", nil, "waits for a device login")
	if !strings.Contains(msg, uc) {
		t.Fatalf("alice's pending message %q lacks her user code", msg)
	}
	idp.ApproveDeviceAs(uc, "alice")
	l, err := loadDeviceLogin(context.Background(), e.storage, deviceSlot("tv", alice.ID))
	if err != nil || l == nil {
		t.Fatalf("alice's pending login: %v %v", l, err)
	}
	clock.Advance(5 * time.Second) // the interval
	if !e.b.pollDeviceOnce(context.Background(), e.storage, deviceSlot("tv", alice.ID), l.ID) {
		t.Fatal("the approved login's poll did not complete it")
	}
	tok := e.okAs(alice.ID, logical.ReadOperation, "creds/tv", nil).Data["access_token"].(string)
	if idp.OwnerOf(tok) != "alice" {
		t.Fatalf("alice's token acts as %q", idp.OwnerOf(tok))
	}
	e.failsAs(bob.ID, logical.ReadOperation, "creds/tv", nil, "needs a device login")
}

// An exchange role whose subject_role is per_entity exchanges the caller's
// own token, and keeps one exchange per person.
func TestExchangeOfAPersonsToken(t *testing.T) {
	p := newPeopleEnv(t, nil)
	sts := fakeidp.NewTokenExchange(fakeidp.TokenExchangeOptions{ClientID: "sts", ClientSecret: "sts-secret", ValidSubject: p.idp.Valid})
	srv := httptest.NewServer(sts)
	t.Cleanup(srv.Close)
	p.ok(logical.UpdateOperation, "config/sts", map[string]any{"token_url": srv.URL + "/token", "client_id": "sts", "client_secret": "sts-secret"})
	p.ok(logical.UpdateOperation, "roles/down", map[string]any{"config": "sts", "grant_type": "token_exchange", "subject_role": "people"})
	p.loginAs(alice, "alice")
	p.loginAs(bob, "bob")
	a := p.okAs(alice.ID, logical.ReadOperation, "creds/down", nil).Data["access_token"].(string)
	b := p.okAs(bob.ID, logical.ReadOperation, "creds/down", nil).Data["access_token"].(string)
	sa, _ := sts.SubjectOf(a)
	sb, _ := sts.SubjectOf(b)
	if p.idp.OwnerOf(sa) != "alice" || p.idp.OwnerOf(sb) != "bob" {
		t.Fatalf("alice's exchange is of %q's token, bob's of %q's", p.idp.OwnerOf(sa), p.idp.OwnerOf(sb))
	}
	p.failsAs(carol.ID, logical.ReadOperation, "creds/down", nil, "needs a login")
}

// On a performance standby a person's read serves their stored token and
// writes nothing (not even the last read); a mint is forwarded. After a
// failover the new active node resumes each person's pending device login.
func TestPerEntityOnStandbyAndAfterFailover(t *testing.T) {
	p := newPeopleEnv(t, nil)
	p.loginAs(alice, "alice")
	tok := p.tokenOf(alice)
	counted := &storagecount.Storage{Storage: p.storage}
	standby := newTestEnv(t, onStorage(counted), withClock(p.clock), withEntities(alice, bob))
	standby.sys.ReplicationStateVal = consts.ReplicationPerformanceStandby
	p.clock.Advance(30 * time.Second)
	got := standby.okAs(alice.ID, logical.ReadOperation, "creds/people", nil).Data["access_token"]
	if got != tok || counted.Puts.Load() != 0 || counted.Deletes.Load() != 0 {
		t.Fatalf("standby read: same token %v, %d puts, %d deletes; want alice's token and no write", got == tok, counted.Puts.Load(), counted.Deletes.Load())
	}
	if _, err := standby.doAs(bob.ID, logical.ReadOperation, "creds/people", nil); err != logical.ErrReadOnly && err != nil {
		t.Fatalf("bob's read on the standby: %v", err)
	}

	// A person's device login, then the active node goes.
	clock := fakeclock.New(testT0)
	e := newTestEnv(t, withClock(clock), withEntities(alice))
	idp := fakeidp.New(fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "tv", ClientSecret: "tv-secret", Scopes: []string{"read"}, DeviceCodes: true})
	idp.SetClock(clock.Now)
	srv := httptest.NewServer(idp)
	t.Cleanup(srv.Close)
	e.ok(logical.UpdateOperation, "config/tv", map[string]any{"token_url": srv.URL + idp.TokenPath(), "device_authorization_url": srv.URL + "/device",
		"client_id": "tv", "client_secret": "tv-secret"})
	e.ok(logical.UpdateOperation, "roles/tv", map[string]any{"config": "tv", "grant_type": "device_code", "scopes": "read", "per_entity": true})
	e.okAs(alice.ID, logical.UpdateOperation, "device-code/tv", nil)
	e.b.devices.stopAll()
	next := newTestEnv(t, onStorage(e.storage), withClock(clock), withEntities(alice))
	t.Cleanup(next.b.devices.stopAll)
	if err := next.b.periodic(context.Background(), &logical.Request{Storage: next.storage}); err != nil {
		t.Fatal(err)
	}
	next.b.devices.mu.Lock()
	_, polling := next.b.devices.running[deviceSlot("tv", alice.ID)]
	next.b.devices.mu.Unlock()
	if !polling {
		t.Fatal("the new active node does not poll alice's pending device login")
	}
}
