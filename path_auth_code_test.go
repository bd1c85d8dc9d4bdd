package idptokens

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// The unauthenticated paths are the callback and the public JWKS only.
func TestAuthCodeCallbackAndJWKSAreTheOnlyUnauthenticatedPaths(t *testing.T) {
	e := newTestEnv(t)
	if got := e.b.PathsSpecial.Unauthenticated; !slices.Equal(got, []string{"callback", "jwks/*"}) {
		t.Fatalf("unauthenticated paths %v, want only callback and jwks/*", got)
	}
}

// The URL carries what RFC 6749 4.1.1 and RFC 7636 ask for, and its S256
// challenge is that of the verifier kept in storage; storage keeps the state
// only as a hash.
func TestAuthURLContents(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	resp := a.ok(logical.UpdateOperation, "auth-url/myid", nil)
	u, _ := url.Parse(resp.Data["url"].(string))
	state := resp.Data["state"].(string)
	if u.Scheme+"://"+u.Host+u.Path != a.base+"/connect/authorize" {
		t.Fatalf("url %s does not start with the auth_url", u)
	}
	q := u.Query()
	want := map[string]string{
		"client_id": myidClient, "scope": "myid.rest.basic", "redirect_uri": vaultCallback,
		"response_type": "code", "state": state, "code_challenge_method": "S256",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if _, has := q["client_secret"]; has {
		t.Error("the URL carries the client secret")
	}
	if _, has := q["prompt"]; has {
		t.Error("prompt set without offline_access")
	}
	if len(state) < 22 { // 128 bits in base64url
		t.Errorf("state %q is shorter than 128 bits", state)
	}
	keys := a.storedStates()
	if len(keys) != 1 || strings.Contains(keys[0], state) {
		t.Fatalf("stored states %v: want one, keyed by a hash", keys)
	}
	raw, _ := a.storage.Get(context.Background(), authStatePrefix+keys[0])
	if strings.Contains(string(raw.Value), state) {
		t.Fatal("the stored state holds the raw state")
	}
	var st authState
	if err := raw.DecodeJSON(&st); err != nil {
		t.Fatal(err)
	}
	if st.Role != "myid" || st.RedirectURI != vaultCallback || st.Verifier == "" {
		t.Fatalf("stored state %+v", st)
	}
	if got := fakeidp.S256Challenge(st.Verifier); got != q.Get("code_challenge") {
		t.Fatalf("code_challenge %q is not S256 of the stored verifier (%q)", q.Get("code_challenge"), got)
	}
	if exp := resp.Data["expires_at"].(string); exp == "" {
		t.Fatal("no expires_at")
	}
	if ttl := st.Expires.Sub(st.Created); ttl != 10*time.Minute {
		t.Fatalf("state lives %s, want the documented default 10m (docs/idps.md)", ttl)
	}

	// A second redirect_uri from the list is used when asked for.
	u2, _ := a.begin("myid", map[string]any{"redirect_uri": vaultCallback2})
	if u2.Query().Get("redirect_uri") != vaultCallback2 {
		t.Fatalf("redirect_uri %q, want %q", u2.Query().Get("redirect_uri"), vaultCallback2)
	}
	if u2.Query().Get("state") == state {
		t.Fatal("two logins got the same state")
	}

	// OIDC Core 11: offline_access needs prompt=consent to be honoured.
	a.ok(logical.UpdateOperation, "config/myid", map[string]any{"scopes": "openid,offline_access"})
	a.ok(logical.UpdateOperation, "roles/myid", map[string]any{"scopes": "openid,offline_access"})
	u3, _ := a.begin("myid", nil)
	if q := u3.Query(); q.Get("prompt") != "consent" || q.Get("scope") != "openid offline_access" {
		t.Fatalf("prompt=%q scope=%q, want consent and the role's scopes", q.Get("prompt"), q.Get("scope"))
	}
}

func TestAuthURLRefusals(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	a.fails(logical.UpdateOperation, "auth-url/myid", map[string]any{"redirect_uri": "https://evil.example/cb"}, "redirect_uri")
	a.fails(logical.UpdateOperation, "auth-url/nope", nil, `no role named "nope"`)
	if n := len(a.storedStates()); n != 0 {
		t.Fatalf("refused auth-url requests stored %d states", n)
	}

	// Not an authorization_code role.
	idp, tokenURL := startIdP(t, fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "c", ClientSecret: "s"})
	_ = idp
	a.ok(logical.UpdateOperation, "config/cc", map[string]any{"token_url": tokenURL, "client_id": "c", "client_secret": "s"})
	a.ok(logical.UpdateOperation, "roles/cc", map[string]any{"config": "cc"})
	a.fails(logical.UpdateOperation, "auth-url/cc", nil, "only for authorization_code roles")

	// Config without auth_url, then without redirect_uris.
	a.ok(logical.UpdateOperation, "roles/cc", map[string]any{"grant_type": "authorization_code"})
	a.fails(logical.UpdateOperation, "auth-url/cc", nil, "has no auth_url")
	a.ok(logical.UpdateOperation, "config/cc", map[string]any{"auth_url": tokenURL, "client_secret": "s"})
	a.fails(logical.UpdateOperation, "auth-url/cc", nil, "has no redirect_uris")

	// redirect_uris must be absolute http(s) URLs (https off loopback).
	for _, bad := range []string{"ftp://vault/cb", "/v1/idp/callback", "http://vault.example.com/v1/idp/callback", "https://vault.example.com/cb#frag"} {
		a.fails(logical.UpdateOperation, "config/cc", map[string]any{"redirect_uris": bad}, "redirect_uris")
	}
	a.fails(logical.UpdateOperation, "config/cc", map[string]any{"auth_state_ttl": "5s"}, "auth_state_ttl")
	a.ok(logical.UpdateOperation, "config/cc", map[string]any{"redirect_uris": vaultCallback, "auth_state_ttl": "2m"})
	read := a.ok(logical.ReadOperation, "config/cc", nil)
	if !slices.Equal(read.Data["redirect_uris"].([]string), []string{vaultCallback}) || read.Data["auth_state_ttl"] != int64(120) {
		t.Fatalf("config read: redirect_uris=%v auth_state_ttl=%v", read.Data["redirect_uris"], read.Data["auth_state_ttl"])
	}
}

// auth-url -> the IdP's authorize -> GET callback -> creds: the MyID wire
// format end to end.
func TestAuthCodeFlowMyID(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{TokenTTL: time.Hour}, nil)
	a.fails(logical.ReadOperation, "creds/myid", nil, "auth-url/myid")

	q := a.login("myid")
	status, page := a.callbackGET(q)
	if status != http.StatusOK || !strings.Contains(page, "Login complete") {
		t.Fatalf("callback %d: %s", status, page)
	}
	if n := len(a.storedStates()); n != 0 {
		t.Fatalf("%d states left after the callback", n)
	}
	sent := a.idp.LastRequest().Form
	if sent.Get("grant_type") != "authorization_code" || sent.Get("redirect_uri") != vaultCallback ||
		sent.Get("code_verifier") == "" || sent.Get("client_id") != myidClient || sent.Get("client_secret") != myidSecret {
		t.Fatalf("token request form %v", redactForm(sent))
	}

	resp := a.creds("myid")
	tok := resp.Data["access_token"].(string)
	if !a.idp.Valid(tok) {
		t.Fatal("the IdP does not accept the token")
	}
	for _, leak := range []string{tok, q.Get("code"), q.Get("state"), myidSecret} {
		if strings.Contains(page, leak) {
			t.Fatal("the callback page shows a token, code, state or secret")
		}
	}
	if ttl := leaseTTL(resp); ttl < time.Hour-5*time.Second || ttl > time.Hour {
		t.Fatalf("lease %s, want about the token's 1h", ttl)
	}
	if resp.Data["scope"] != "myid.rest.basic" {
		t.Fatalf("scope %v", resp.Data["scope"])
	}
	if again := a.creds("myid"); again.Data["access_token"] != tok || a.idp.TokenRequests() != 1 {
		t.Fatalf("second read: same=%v IdP requests=%d", again.Data["access_token"] == tok, a.idp.TokenRequests())
	}
	if logins := a.metricsJSON().Configs["myid"].AuthCodeLogins; logins["success"] != 1 {
		t.Fatalf("auth-code logins counted %v, want one success", logins)
	}

	// The CLI form: vault write idp/callback code=... state=...
	q = a.login("myid")
	w := a.ok(logical.UpdateOperation, "callback", map[string]any{"code": q.Get("code"), "state": q.Get("state")})
	if w.Data["role"] != "myid" || w.Data["scope"] != "myid.rest.basic" || w.Data["expires_at"] == "" {
		t.Fatalf("callback write answered %v", w.Data)
	}
	for _, v := range w.Data {
		if s, ok := v.(string); ok && a.idp.Valid(s) {
			t.Fatal("the callback write answered a token")
		}
	}
	if now := a.creds("myid").Data["access_token"]; now == tok || !a.idp.Valid(now.(string)) {
		t.Fatal("creds does not hand out the token of the latest login")
	}
}

func redactForm(f url.Values) url.Values {
	out := url.Values{}
	for k, v := range f {
		if k == "client_secret" || k == "code" || k == "code_verifier" {
			v = []string{"<set>"}
		}
		out[k] = v
	}
	return out
}

func TestAuthCodeReplayedState(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	q := a.login("myid")
	if status, _ := a.callbackGET(q); status != http.StatusOK {
		t.Fatalf("first callback %d", status)
	}
	before := a.idp.TokenRequests()
	status, page := a.callbackGET(q)
	if status != http.StatusBadRequest || !strings.Contains(page, "unknown or was already completed") {
		t.Fatalf("replay: %d %s", status, page)
	}
	a.fails(logical.UpdateOperation, "callback", map[string]any{"code": q.Get("code"), "state": q.Get("state")}, "unknown or was already completed")
	if a.idp.TokenRequests() != before {
		t.Fatal("a replayed state reached the IdP")
	}
}

// Two callbacks racing with one state: exactly one gets to the IdP.
func TestAuthCodeConcurrentCallbacks(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	q := a.login("myid")
	var wg sync.WaitGroup
	results := make([]*logical.Response, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = a.b.HandleRequest(context.Background(), &logical.Request{
				Operation: logical.UpdateOperation, Path: "callback", Storage: a.storage,
				Data: map[string]any{"code": q.Get("code"), "state": q.Get("state")},
			})
		}()
	}
	wg.Wait()
	won := 0
	for _, r := range results {
		if r != nil && !r.IsError() {
			won++
		}
	}
	if won != 1 || a.idp.TokenRequests() != 1 {
		t.Fatalf("%d callbacks succeeded and %d reached the IdP, want 1 and 1", won, a.idp.TokenRequests())
	}
}

func TestAuthCodeUnknownState(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	a.login("myid") // a pending login that must stay untouched
	for _, q := range []url.Values{
		{"code": {"x"}, "state": {"not-a-state-vault-issued-0000000000000"}},
		{"code": {"x"}},
		{"state": {strings.Repeat("s", maxCallbackParam+1)}, "code": {"x"}},
	} {
		status, page := a.callbackGET(q)
		if status != http.StatusBadRequest || !strings.Contains(page, "Login failed") {
			t.Fatalf("callback %v: %d %s", q, status, page)
		}
	}
	if a.idp.TokenRequests() != 0 || len(a.storedStates()) != 1 {
		t.Fatalf("unknown states reached the IdP (%d) or consumed a login (%d left)", a.idp.TokenRequests(), len(a.storedStates()))
	}
}

func TestAuthCodeExpiredState(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, map[string]any{"auth_state_ttl": "2m"})
	q := a.login("myid")
	a.moveClock(2*time.Minute + time.Second)
	status, page := a.callbackGET(q)
	if status != http.StatusBadRequest || !strings.Contains(page, "expired") {
		t.Fatalf("expired state: %d %s", status, page)
	}
	if a.idp.TokenRequests() != 0 {
		t.Fatal("an expired state reached the IdP")
	}
	if status, _ := a.callbackGET(q); status != http.StatusBadRequest {
		t.Fatal("an expired state was not consumed")
	}

	// The periodic sweep deletes expired logins and keeps live ones.
	a.b.now = time.Now
	a.begin("myid", nil)
	a.moveClock(time.Minute)
	a.begin("myid", nil)
	a.moveClock(2*time.Minute + 30*time.Second)
	if _, err := a.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation, Storage: a.storage}); err != nil {
		t.Fatal(err)
	}
	if n := len(a.storedStates()); n != 1 {
		t.Fatalf("%d states after the sweep, want the one live login", n)
	}
}

// A state is bound to its role as it was: a change to the role or its
// config, or deleting it, voids the pending login without a call to the IdP.
func TestAuthCodeForeignState(t *testing.T) {
	cases := map[string]func(a *authEnv){
		"role scopes changed": func(a *authEnv) {
			a.ok(logical.UpdateOperation, "roles/myid", map[string]any{"extra_params": map[string]any{"audience": "other"}})
		},
		"role deleted": func(a *authEnv) { a.ok(logical.DeleteOperation, "roles/myid", nil) },
		"role deleted and another written": func(a *authEnv) {
			a.ok(logical.DeleteOperation, "roles/myid", nil)
			a.ok(logical.UpdateOperation, "roles/myid", map[string]any{"config": "myid", "scopes": "other.scope"})
		},
		"client changed": func(a *authEnv) {
			a.ok(logical.UpdateOperation, "config/myid", map[string]any{"client_id": "someone-else"})
		},
		"redirect_uri withdrawn": func(a *authEnv) {
			a.ok(logical.UpdateOperation, "config/myid", map[string]any{"redirect_uris": vaultCallback2})
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			a := setupMyID(t, fakeidp.Options{}, nil)
			q := a.login("myid")
			change(a)
			status, page := a.callbackGET(q)
			if status != http.StatusBadRequest || !strings.Contains(page, "changed or deleted") {
				t.Fatalf("%d %s", status, page)
			}
			if a.idp.TokenRequests() != 0 {
				t.Fatal("a foreign state reached the IdP")
			}
		})
	}

	// A login for one role fills that role only.
	t.Run("other role", func(t *testing.T) {
		a := setupMyID(t, fakeidp.Options{}, nil)
		a.ok(logical.UpdateOperation, "roles/second", map[string]any{"config": "myid"})
		a.callbackGET(a.login("myid"))
		a.creds("myid")
		a.fails(logical.ReadOperation, "creds/second", nil, "auth-url/second")
	})
}

// The IdP's error on the redirect is shown, escaped, and ends the login.
func TestAuthCodeIdPError(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	_, state := a.begin("myid", nil)
	status, page := a.callbackGET(url.Values{
		"state": {state}, "error": {"access_denied"},
		"error_description": {"<script>alert(1)</script> the user said no" + strings.Repeat("!", 1000)},
	})
	if status != http.StatusBadRequest || !strings.Contains(page, "access_denied") || !strings.Contains(page, "the user said no") {
		t.Fatalf("%d %s", status, page)
	}
	if strings.Contains(page, "<script>") || strings.Count(page, "!") > 300 {
		t.Fatal("the IdP's words are not escaped or not capped")
	}
	if len(a.storedStates()) != 0 || a.idp.TokenRequests() != 0 {
		t.Fatal("the state survived the IdP's error, or the IdP was called")
	}

	// The fake's own refusal on the redirect (a scope it does not know).
	a.ok(logical.UpdateOperation, "roles/myid", map[string]any{"scopes": "not.allowed"})
	u, _ := a.begin("myid", nil)
	q := a.browse(u)
	if q.Get("error") != "invalid_scope" {
		t.Fatalf("the fake answered %v", q)
	}
	if _, page := a.callbackGET(q); !strings.Contains(page, "invalid_scope") {
		t.Fatalf("page: %s", page)
	}
}

// A code the IdP refuses: its error is shown, nothing is stored.
func TestAuthCodeExchangeRefused(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	q := a.login("myid")
	q.Set("code", q.Get("code")+"tampered")
	status, page := a.callbackGET(q)
	if status != http.StatusBadRequest || !strings.Contains(page, "invalid_grant") {
		t.Fatalf("%d %s", status, page)
	}
	if strings.Contains(page, q.Get("code")) || strings.Contains(page, myidSecret) {
		t.Fatal("the page shows the code or the secret")
	}
	if tok, _ := a.b.tokens.Peek(context.Background(), storageKV{a.storage}, "role/myid"); tok != nil {
		t.Fatal("a token was stored")
	}
	a.fails(logical.ReadOperation, "creds/myid", nil, "needs a login")
}

// MyID issues no refresh token: once the token expires, creds says how to
// log in again.
func TestAuthCodeNoRefreshNeedsLogin(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	a.callbackGET(a.login("myid"))
	a.creds("myid")
	a.moveClock(61 * time.Minute)
	a.fails(logical.ReadOperation, "creds/myid", nil, "vault write -f idp/auth-url/myid")
	if a.idp.TokenRequests() != 1 {
		t.Fatalf("%d token requests, want only the code exchange", a.idp.TokenRequests())
	}
}

// Where the IdP issued a refresh token, creds refreshes after expiry.
func TestAuthCodeRefresh(t *testing.T) {
	a := setupOAuth2Refresh(t)
	a.callbackGET(a.login("app"))
	first := a.creds("app").Data["access_token"].(string)
	a.moveClock(61 * time.Minute)
	resp := a.creds("app")
	tok := resp.Data["access_token"].(string)
	if tok == first || !a.idp.Valid(tok) || a.idp.TokenRequestsByGrant("refresh_token") != 1 {
		t.Fatalf("after expiry: new=%v valid=%v refreshes=%d", tok != first, a.idp.Valid(tok), a.idp.TokenRequestsByGrant("refresh_token"))
	}
	if resp.Data["scope"] != "read write" {
		t.Fatalf("scope %v", resp.Data["scope"])
	}
}

// On a performance standby the callback consumes nothing and asks Vault to
// forward it.
func TestAuthCodeCallbackOnPerfStandby(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	q := a.login("myid")
	a.sys.ReplicationStateVal = consts.ReplicationPerformanceStandby
	for _, op := range []logical.Operation{logical.ReadOperation, logical.UpdateOperation} {
		_, err := a.do(op, "callback", map[string]any{"code": q.Get("code"), "state": q.Get("state")})
		if !errors.Is(err, logical.ErrReadOnly) {
			t.Fatalf("%s on a perf standby: %v, want ErrReadOnly", op, err)
		}
	}
	if _, err := a.do(logical.UpdateOperation, "auth-url/myid", nil); !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("auth-url on a perf standby: %v", err)
	}
	a.sys.ReplicationStateVal = 0
	if status, _ := a.callbackGET(q); status != http.StatusOK {
		t.Fatal("the login did not survive the standby's refusal")
	}
}

// Pending logins are bounded per role: the newest maxPendingLogins stay,
// older ones are refused, and storage holds no more than the bound.
func TestAuthCodePendingLoginsBoundedPerRole(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	var queries []url.Values
	for range maxPendingLogins + 2 {
		queries = append(queries, a.login("myid"))
	}
	if n := len(a.storedStates()); n != 3 {
		t.Fatalf("%d pending states stored, want the documented bound 3 (docs/security.md)", n)
	}
	if status, page := a.callbackGET(queries[0]); status != http.StatusBadRequest || !strings.Contains(page, "newer login") {
		t.Fatalf("the oldest login: %d %s", status, page)
	}
	if status, _ := a.callbackGET(queries[len(queries)-1]); status != http.StatusOK {
		t.Fatalf("the newest login failed: %d", status)
	}
	// Another role's logins do not count against this one's.
	a.ok(logical.UpdateOperation, "roles/other", map[string]any{"config": "myid"})
	a.login("other")
	if n := len(a.storedStates()); n != maxPendingLogins {
		t.Fatalf("%d states after one login of another role, want %d", n, maxPendingLogins)
	}
	// A deleted role's pending logins go with it.
	a.ok(logical.DeleteOperation, "roles/myid", nil)
	if n := len(a.storedStates()); n != 1 {
		t.Fatalf("%d states after the role's delete, want only the other role's", n)
	}
}

// prompt=login makes the IdP ask the person to log in even with an SSO
// session, so that whoever may call auth-url cannot fill the role silently
// with another user's session.
func TestAuthURLPrompt(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	a.ok(logical.UpdateOperation, "roles/myid", map[string]any{"prompt": "login"})
	u, _ := a.begin("myid", nil)
	if got := u.Query().Get("prompt"); got != "login" {
		t.Fatalf("prompt=%q, want login", got)
	}
	if got := a.ok(logical.ReadOperation, "roles/myid", nil).Data["prompt"]; !slices.Equal(got.([]string), []string{"login"}) {
		t.Fatalf("role read shows prompt %v", got)
	}
	a.ok(logical.UpdateOperation, "roles/myid", map[string]any{"scopes": "myid.rest.basic,offline_access"})
	u, _ = a.begin("myid", nil)
	if got := u.Query().Get("prompt"); got != "login consent" {
		t.Fatalf("prompt=%q, want login consent (offline_access needs consent)", got)
	}
	a.fails(logical.UpdateOperation, "roles/myid", map[string]any{"prompt": "none"}, "prompt")
	mt := setupMicroTek(t, time.Hour)
	mt.fails(logical.UpdateOperation, "roles/x", map[string]any{"config": "mt", "prompt": "login"}, "prompt")
}
