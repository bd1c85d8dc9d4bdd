package fakeidp

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func mtCall() call {
	return call{form: form("client_id", testID, "grant_type", "client_credentials", "client_secret", testSecret, "scope", "public-api")}
}

func myidRedeem(code, verifierOrEmpty string) call {
	f := form("grant_type", "authorization_code", "client_id", testID, "client_secret", testSecret, "code", code, "redirect_uri", redirect)
	if verifierOrEmpty != "" {
		f.Set("code_verifier", verifierOrEmpty)
	}
	return call{form: f}
}

func TestMicroTekOneActiveToken(t *testing.T) {
	s, ts := newFake(t, Options{Style: StyleMicroTek, RefreshTokens: true})
	first := wantToken(t, do(t, ts, s, mtCall()))
	second := wantToken(t, do(t, ts, s, mtCall()))
	a1, a2 := first["access_token"].(string), second["access_token"].(string)
	if s.Valid(a1) || resource(t, ts, a1) != http.StatusUnauthorized {
		t.Fatal("first token still works after a second was issued")
	}
	if !s.Valid(a2) || resource(t, ts, a2) != http.StatusOK {
		t.Fatal("newest token does not work")
	}
	// The first refresh token died with its access token.
	r := do(t, ts, s, call{form: form("client_id", testID, "client_secret", testSecret, "grant_type", "refresh_token", "refresh_token", first["refresh_token"].(string))})
	wantError(t, s, r, 400, "invalid_grant")
	// Refreshing invalidates the previous token too.
	third := wantToken(t, do(t, ts, s, call{form: form("client_id", testID, "client_secret", testSecret, "grant_type", "refresh_token", "refresh_token", second["refresh_token"].(string))}))
	if s.Valid(a2) || !s.Valid(third["access_token"].(string)) {
		t.Fatal("refresh did not replace the previous token")
	}
}

func TestMicroTekConcurrentLeavesOneValid(t *testing.T) {
	s, ts := newFake(t, Options{Style: StyleMicroTek})
	results := make([]*http.Response, 20)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = ts.Client().PostForm(ts.URL+s.TokenPath(), mtCall().form)
		}()
	}
	wg.Wait()
	valid := 0
	for _, resp := range results {
		if resp == nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("response %v", resp)
		}
		var b struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(resp.Body).Decode(&b)
		resp.Body.Close()
		if s.Valid(b.AccessToken) {
			valid++
		}
	}
	if valid != 1 || s.TokenRequests() != 20 {
		t.Fatalf("valid = %d, requests = %d", valid, s.TokenRequests())
	}
}

func TestMyIDCodeSingleUseAndPKCE(t *testing.T) {
	s, ts := newFake(t, Options{Style: StyleMyID, RedirectURIs: []string{redirect}})

	code := s.IssueCode(redirect, "myid.rest.basic", "")
	body := wantToken(t, do(t, ts, s, myidRedeem(code, "")), "expires_in", "scope")
	if body["scope"] != "myid.rest.basic" {
		t.Fatalf("scope = %v", body["scope"])
	}
	wantError(t, s, do(t, ts, s, myidRedeem(code, "")), 400, "invalid_grant")

	challenge := S256Challenge(verifier)
	for _, tc := range []struct{ name, verifier, code string }{
		{"missing verifier", "", "invalid_grant"},
		{"wrong verifier", strings.Repeat("a", 43), "invalid_grant"},
		{"challenge as verifier", challenge, "invalid_grant"},
		{"short verifier", "abc", "invalid_grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := s.IssueCode(redirect, "myid.rest.basic", challenge)
			wantError(t, s, do(t, ts, s, myidRedeem(c, tc.verifier)), 400, tc.code)
			// A failed presentation spends the code, as real servers do.
			wantError(t, s, do(t, ts, s, myidRedeem(c, verifier)), 400, "invalid_grant")
		})
	}
	c := s.IssueCode(redirect, "myid.rest.basic", challenge)
	wantToken(t, do(t, ts, s, myidRedeem(c, verifier)), "expires_in", "scope")
}

func TestCodeExpires(t *testing.T) {
	s, ts := newFake(t, Options{Style: StyleMyID, RedirectURIs: []string{redirect}})
	code := s.IssueCode(redirect, "myid.rest.basic", "")
	s.mu.Lock()
	s.now = func() time.Time { return time.Now().Add(codeTTL + time.Second) }
	s.mu.Unlock()
	wantError(t, s, do(t, ts, s, myidRedeem(code, "")), 400, "invalid_grant")
}

func TestAuthorize(t *testing.T) {
	s, ts := newFake(t, Options{Style: StyleMyID, RedirectURIs: []string{redirect, redirect + "?keep=1"}})
	good := url.Values{
		"client_id": {testID}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"myid.rest.basic"},
		"state": {"xyz"}, "code_challenge": {S256Challenge(verifier)}, "code_challenge_method": {"S256"},
	}
	get := func(q url.Values) result {
		return do(t, ts, s, call{method: http.MethodGet, path: "/connect/authorize", query: q.Encode(), ctype: "-"})
	}
	r := get(good)
	if r.status != http.StatusFound {
		t.Fatalf("status = %d %s", r.status, r.text)
	}
	loc, _ := url.Parse(r.header.Get("Location"))
	if !strings.HasPrefix(loc.String(), redirect+"?") || loc.Query().Get("state") != "xyz" {
		t.Fatalf("Location = %s", loc)
	}
	wantToken(t, do(t, ts, s, myidRedeem(loc.Query().Get("code"), verifier)))

	// The document says the request is posted; that works too.
	p := do(t, ts, s, call{path: "/connect/authorize", form: good})
	if p.status != http.StatusFound {
		t.Fatalf("POST status = %d", p.status)
	}

	// Bad client or redirect_uri: plain 400, no redirect.
	for _, q := range []url.Values{with(good, "client_id", "other"), with(good, "redirect_uri", "https://evil.example/cb"), with(good, "redirect_uri", "-")} {
		if r := get(q); r.status != http.StatusBadRequest || r.header.Get("Location") != "" {
			t.Fatalf("%v: status = %d", q, r.status)
		}
	}
	// Other errors come back on the redirect.
	for _, tc := range []struct {
		q    url.Values
		code string
	}{
		{with(good, "response_type", "token"), "unsupported_response_type"},
		{with(good, "response_type", "-"), "invalid_request"},
		{with(good, "scope", "admin"), "invalid_scope"},
		{with(good, "scope", "-"), "invalid_request"},
		{with(good, "code_challenge_method", "plain"), "invalid_request"},
		{with(good, "code_challenge_method", "-"), "invalid_request"},
		{with(good, "code_challenge", "short"), "invalid_request"},
		{with(good, "code_challenge", "-"), "invalid_request"},
	} {
		r := get(tc.q)
		loc, _ := url.Parse(r.header.Get("Location"))
		if r.status != http.StatusFound || loc.Query().Get("error") != tc.code || loc.Query().Get("state") != "xyz" ||
			loc.Query().Get("error_description") == "" || loc.Query().Get("code") != "" {
			t.Fatalf("%v: %d %s", tc.q, r.status, loc)
		}
	}
	// The redirect_uri's own query survives.
	r = get(with(good, "redirect_uri", redirect+"?keep=1"))
	loc, _ = url.Parse(r.header.Get("Location"))
	if loc.Query().Get("keep") != "1" || loc.Query().Get("code") == "" {
		t.Fatalf("Location = %s", loc)
	}
}

func TestAuthorizeOnlyWhereDocumented(t *testing.T) {
	for _, st := range []Style{StyleMWI, StyleMicroTek} {
		s, ts := newFake(t, Options{Style: st, RedirectURIs: []string{redirect}})
		r := do(t, ts, s, call{method: http.MethodGet, path: "/connect/authorize", ctype: "-"})
		if r.status != http.StatusNotFound {
			t.Fatalf("%s: status = %d", st, r.status)
		}
	}
}

func TestRefreshRotation(t *testing.T) {
	s, ts := newFake(t, Options{Scopes: []string{"read", "write"}, RefreshTokens: true})
	cc := call{auth: formBasic(testID, testSecret), form: form("grant_type", "client_credentials", "scope", "read write")}
	first := wantToken(t, do(t, ts, s, cc), "expires_in", "scope", "refresh_token")
	refresh := func(rt, scope string) result {
		f := form("grant_type", "refresh_token", "refresh_token", rt)
		if scope != "" {
			f.Set("scope", scope)
		}
		return do(t, ts, s, call{auth: formBasic(testID, testSecret), form: f})
	}
	rt1 := first["refresh_token"].(string)
	second := wantToken(t, refresh(rt1, ""), "expires_in", "scope", "refresh_token")
	if second["refresh_token"] == rt1 || second["scope"] != "read write" {
		t.Fatalf("not rotated: %v", second)
	}
	wantError(t, s, refresh(rt1, ""), 400, "invalid_grant") // spent
	// Rotation alone does not kill the earlier access token (not MicroTek).
	if !s.Valid(first["access_token"].(string)) {
		t.Fatal("earlier access token invalidated")
	}
	rt2 := second["refresh_token"].(string)
	wantError(t, s, refresh(rt2, "read admin"), 400, "invalid_scope")
	narrowed := wantToken(t, refresh(rt2, "read"), "expires_in", "scope", "refresh_token")
	if narrowed["scope"] != "read" {
		t.Fatalf("scope = %v", narrowed["scope"])
	}
	wantError(t, s, refresh("", ""), 400, "invalid_request")
	if s.TokenRequestsByGrant("refresh_token") != 5 || s.TokenRequestsByGrant("client_credentials") != 1 {
		t.Fatalf("by grant: %d %d", s.TokenRequestsByGrant("refresh_token"), s.TokenRequestsByGrant("client_credentials"))
	}
}

func TestRevocation(t *testing.T) {
	s, ts := newFake(t, Options{Style: StyleScreeningEagle, RefreshTokens: true})
	get := call{auth: rawBasic(testID, testSecret), form: form("grant_type", "client_credentials", "scope", "openid")}
	body := wantToken(t, do(t, ts, s, get))
	at, rt := body["access_token"].(string), body["refresh_token"].(string)
	revoke := func(auth, tok string) result {
		return do(t, ts, s, call{path: "/connect/revocation", auth: auth, form: form("token", tok)})
	}
	wantError(t, s, revoke("", at), 401, "invalid_client")
	if r := revoke(rawBasic(testID, testSecret), at); r.status != http.StatusOK {
		t.Fatalf("status = %d", r.status)
	}
	if s.Valid(at) || resource(t, ts, at) != http.StatusUnauthorized {
		t.Fatal("revoked token still works")
	}
	if r := revoke(rawBasic(testID, testSecret), rt); r.status != http.StatusOK {
		t.Fatalf("status = %d", r.status)
	}
	r := do(t, ts, s, call{auth: rawBasic(testID, testSecret), form: form("grant_type", "refresh_token", "refresh_token", rt)})
	wantError(t, s, r, 400, "invalid_grant")
	if r := revoke(rawBasic(testID, testSecret), "unknown"); r.status != http.StatusOK {
		t.Fatalf("unknown token: status = %d", r.status)
	}
	if s.TokenRequests() != 2 {
		t.Fatalf("revocations counted as token requests: %d", s.TokenRequests())
	}
}

func TestResourceAndExpiry(t *testing.T) {
	s, ts := newFake(t, Options{Style: StyleMicroTek})
	tok := wantToken(t, do(t, ts, s, mtCall()))["access_token"].(string)
	r := do(t, ts, s, call{method: http.MethodGet, path: "/api/resource", auth: "Bearer " + tok, ctype: "-"})
	if r.status != 200 || r.json["ok"] != true || r.json["client_id"] != testID {
		t.Fatalf("%d %s", r.status, r.text)
	}
	for _, auth := range []string{"", "Bearer nope", "Basic " + tok, tok} {
		r := do(t, ts, s, call{method: http.MethodGet, path: "/api/resource", auth: auth, ctype: "-"})
		if r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%q: %d", auth, r.status)
		}
	}
	s.mu.Lock()
	s.now = func() time.Time { return time.Now().Add(defaultTTL) }
	s.mu.Unlock()
	if s.Valid(tok) || resource(t, ts, tok) != 401 {
		t.Fatal("expired token still works")
	}
}

func TestRevokeAll(t *testing.T) {
	s, ts := newFake(t, Options{Scopes: []string{"read"}, RefreshTokens: true})
	body := wantToken(t, do(t, ts, s, call{auth: formBasic(testID, testSecret), form: form("grant_type", "client_credentials")}))
	s.RevokeAll()
	if s.Valid(body["access_token"].(string)) {
		t.Fatal("access token survived RevokeAll")
	}
	r := do(t, ts, s, call{auth: formBasic(testID, testSecret), form: form("grant_type", "refresh_token", "refresh_token", body["refresh_token"].(string))})
	wantError(t, s, r, 400, "invalid_grant")
}

func TestExpiresInShapes(t *testing.T) {
	cc := call{form: form("grant_type", "client_credentials", "client_id", testID, "client_secret", testSecret)}
	for _, tc := range []struct {
		o    Options
		want any
	}{
		{Options{}, float64(3600)},
		{Options{TokenTTL: 90 * time.Second}, float64(90)},
		{Options{ExpiresInAsString: true}, "3600"},
		{Options{OmitExpiresIn: true}, nil},
	} {
		s, ts := newFake(t, tc.o)
		if got := wantToken(t, do(t, ts, s, cc))["expires_in"]; got != tc.want {
			t.Fatalf("%+v: expires_in = %#v", tc.o, got)
		}
	}
	s, ts := newFake(t, Options{})
	s.SetTokenTTL(5 * time.Minute)
	if got := wantToken(t, do(t, ts, s, cc))["expires_in"]; got != float64(300) {
		t.Fatalf("after SetTokenTTL: %v", got)
	}
}

func TestIDTokenIsJWTShaped(t *testing.T) {
	s, ts := newFake(t, Options{Style: StyleScreeningEagle, IDTokens: true})
	body := wantToken(t, do(t, ts, s, call{auth: rawBasic(testID, testSecret), form: form("grant_type", "client_credentials", "scope", "openid")}), "expires_in", "scope", "id_token")
	if n := strings.Count(body["id_token"].(string), "."); n != 2 {
		t.Fatalf("id_token has %d dots", n)
	}
}

func TestFailNext(t *testing.T) {
	s, ts := newFake(t, Options{Style: StyleScreeningEagle})
	cc := call{auth: rawBasic(testID, testSecret), form: form("grant_type", "client_credentials", "scope", "openid")}
	s.FailNext(2, http.StatusTooManyRequests)
	for range 2 {
		r := do(t, ts, s, cc)
		wantError(t, s, r, 429, "temporarily_unavailable")
		if r.header.Get("Retry-After") != "1" {
			t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
		}
	}
	wantToken(t, do(t, ts, s, cc))
	s.FailNext(1, http.StatusInternalServerError)
	r := do(t, ts, s, cc)
	wantError(t, s, r, 500, "server_error")
	if r.header.Get("Retry-After") != "" {
		t.Fatal("Retry-After on a 500")
	}
	if s.TokenRequests() != 4 || s.TokenRequestsByGrant("client_credentials") != 4 {
		t.Fatalf("requests = %d", s.TokenRequests())
	}
}

func TestFailNextKeepsCode(t *testing.T) {
	s, ts := newFake(t, Options{Style: StyleMyID, RedirectURIs: []string{redirect}})
	code := s.IssueCode(redirect, "myid.rest.basic", "")
	s.FailNext(1, http.StatusServiceUnavailable)
	wantError(t, s, do(t, ts, s, myidRedeem(code, "")), 503, "temporarily_unavailable")
	wantToken(t, do(t, ts, s, myidRedeem(code, "")))
}

func TestSetFailEvery(t *testing.T) {
	s, ts := newFake(t, Options{Style: StyleMicroTek})
	s.SetFailEvery(2, http.StatusBadGateway)
	var got []int
	for range 4 {
		got = append(got, do(t, ts, s, mtCall()).status)
	}
	if want := []int{200, 502, 200, 502}; !slices.Equal(got, want) {
		t.Fatalf("statuses = %v, want %v", got, want)
	}
	s.SetFailEvery(0, 0)
	for range 3 {
		wantToken(t, do(t, ts, s, mtCall()))
	}
}

func TestSetDelay(t *testing.T) {
	s, ts := newFake(t, Options{Style: StyleMicroTek})
	s.SetDelay(150 * time.Millisecond)
	start := time.Now()
	wantToken(t, do(t, ts, s, mtCall()))
	if time.Since(start) < 150*time.Millisecond {
		t.Fatal("answered before the delay")
	}
	// A client that gives up sees a timeout.
	cl := *ts.Client()
	cl.Timeout = 20 * time.Millisecond
	c := mtCall()
	if _, err := cl.PostForm(ts.URL+s.TokenPath(), c.form); err == nil {
		t.Fatal("no timeout")
	}
}

func TestRecorded(t *testing.T) {
	s, ts := newFake(t, Options{Style: StyleMWI, Username: mwiUser, Password: mwiPass})
	if s.LastRequest().Header != nil || len(s.Requests()) != 0 {
		t.Fatal("recorded before any request")
	}
	do(t, ts, s, call{auth: rawBasic(testID, testSecret), form: form("grant_type", "password", "username", mwiUser, "password", mwiPass, "scope", "test_api")})
	do(t, ts, s, call{ctype: "text/plain", raw: "grant_type=password"})
	last := s.LastRequest()
	if last.Form.Get("grant_type") != "password" || last.Header.Get("Content-Type") != "text/plain" || last.Time.IsZero() {
		t.Fatalf("last = %+v", last)
	}
	all := s.Requests()
	if len(all) != 2 || all[0].Form.Get("username") != mwiUser || all[0].Header.Get("Authorization") != rawBasic(testID, testSecret) {
		t.Fatalf("requests = %+v", all)
	}
	all[0].Form.Set("username", "changed")
	if s.Requests()[0].Form.Get("username") != mwiUser {
		t.Fatal("Requests shares its maps with the server")
	}
}

func TestOnTokenRequest(t *testing.T) {
	type ev struct {
		grant  string
		status int
		code   string
	}
	var mu sync.Mutex
	var evs []ev
	s, ts := newFake(t, Options{Style: StyleMicroTek, OnTokenRequest: func(g string, st int, c string) {
		mu.Lock()
		evs = append(evs, ev{g, st, c})
		mu.Unlock()
	}})
	do(t, ts, s, mtCall())
	do(t, ts, s, call{form: with(mtCall().form, "client_secret", "x")})
	mu.Lock()
	defer mu.Unlock()
	if len(evs) != 2 || evs[0] != (ev{"client_credentials", 200, ""}) || evs[1] != (ev{"client_credentials", 401, "invalid_client"}) {
		t.Fatalf("events = %+v", evs)
	}
}

func TestUnknownPaths(t *testing.T) {
	s, ts := newFake(t, Options{})
	for _, p := range []string{"/", "/token", "/api/id/v1/auth/token", "/connect/token/"} {
		if r := do(t, ts, s, call{path: p, form: form("grant_type", "client_credentials")}); r.status != 404 {
			t.Fatalf("%s: %d", p, r.status)
		}
	}
}

func TestNewRejectsUnknownStyle(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	New(Options{Style: "okta"})
}
