//go:build integration

package integration

import (
	"html"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// browser is the user's browser stand-in: it keeps cookies and follows
// redirects, from the IdP back to Vault's unauthenticated callback.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, client: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// page is where the browser ended up and what it shows.
type page struct {
	URL    *url.URL
	Status int
	Body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		b.t.Fatal(err)
	}
	return page{URL: resp.Request.URL, Status: resp.StatusCode, Body: string(body)}
}

func (b *browser) get(u string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

var (
	formRE  = regexp.MustCompile(`(?s)<form([^>]*)>(.*?)</form>`)
	inputRE = regexp.MustCompile(`<input[^>]*>`)
	attrRE  = regexp.MustCompile(`(\w+)="([^"]*)"`)
)

// submitForm posts the page's first POST form, whatever the order of its
// attributes (oidc-provider's device pages put method before action), with
// its inputs and the given values for them.
func (b *browser) submitForm(p page, values map[string]string) page {
	b.t.Helper()
	for _, m := range formRE.FindAllStringSubmatch(p.Body, -1) {
		attrs := map[string]string{}
		for _, a := range attrRE.FindAllStringSubmatch(m[1], -1) {
			attrs[a[1]] = html.UnescapeString(a[2])
		}
		if !strings.EqualFold(attrs["method"], "post") {
			continue
		}
		action, err := p.URL.Parse(attrs["action"])
		if err != nil {
			b.t.Fatal(err)
		}
		form := url.Values{}
		for _, in := range inputRE.FindAllString(m[2], -1) {
			ia := map[string]string{}
			for _, a := range attrRE.FindAllStringSubmatch(in, -1) {
				ia[a[1]] = html.UnescapeString(a[2])
			}
			if name := ia["name"]; name != "" {
				form.Set(name, ia["value"])
				if v, ok := values[name]; ok {
					form.Set(name, v)
				}
			}
		}
		req, err := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(form.Encode()))
		if err != nil {
			b.t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return b.do(req)
	}
	b.t.Fatalf("no POST form on %s (HTTP %d):\n%s", p.URL.Redacted(), p.Status, p.Body)
	return page{}
}

// callbackURL is the redirect_uri to register at the IdP: Vault's own
// unauthenticated callback of the idp/ mount.
func (v *Vault) callbackURL() string { return v.Addr + "/v1/idp/callback" }

// authURL writes idp/auth-url/<role> and returns the login URL and state.
func (v *Vault) authURL(role string, args ...string) (string, string) {
	v.t.Helper()
	var s Secret
	// -f: the request may carry no data (redirect_uri is optional).
	v.JSON(&s, append([]string{"write", "-f", "idp/auth-url/" + role}, args...)...)
	if s.String("url") == "" || s.String("state") == "" {
		v.t.Fatalf("auth-url answered %+v", s.Data)
	}
	return s.String("url"), s.String("state")
}

// loginCode is the authorization code of a login the IdP approves at once:
// the query of its redirect, which the test reads instead of following.
func loginCode(t *testing.T, loginURL string) string {
	t.Helper()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(loginURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("the IdP's redirect %q has no code (%v)", resp.Header.Get("Location"), err)
	}
	return loc.Query().Get("code")
}

func atCallback(t *testing.T, v *Vault, p page) {
	t.Helper()
	if p.URL.Host != strings.TrimPrefix(v.Addr, "http://") || p.URL.Path != "/v1/idp/callback" {
		t.Fatalf("the browser ended at %s, want Vault's callback", p.URL.Redacted())
	}
}

// TestAuthCodeMyID: the MyID wire format through the real Vault binary. The
// browser opens the URL from auth-url, the fake MyID approves and redirects
// to Vault's unauthenticated callback, and creds hands out the token.
func TestAuthCodeMyID(t *testing.T) {
	t.Parallel()
	v := StartDevVault(t)
	const ttl = 30 * time.Second
	idp := StartFakeIdP(t, fakeidp.Options{
		Style: fakeidp.StyleMyID, ClientID: "myid-client", ClientSecret: "myid-secret",
		RedirectURIs: []string{v.callbackURL()}, TokenTTL: ttl,
	})
	v.Write("idp/config/myid", "provider=myid", "token_url="+idp.TokenURL(), "auth_url="+idp.URL+"/connect/authorize",
		"client_id=myid-client", "client_secret=myid-secret", "redirect_uris="+v.callbackURL())
	v.Write("idp/roles/myid", "config=myid")

	if r := v.CLI("read", "idp/creds/myid"); r.Err == nil || !strings.Contains(r.Stderr, "vault write -f idp/auth-url/myid") {
		t.Fatalf("creds before a login: err=%v stderr=%s", r.Err, r.Stderr)
	}

	loginURL, state := v.authURL("myid")
	br := newBrowser(t)
	p := br.get(loginURL)
	atCallback(t, v, p)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Login complete") {
		t.Fatalf("callback answered %d:\n%s", p.Status, p.Body)
	}
	code := p.URL.Query().Get("code")
	if code == "" || p.URL.Query().Get("state") != state {
		t.Fatalf("callback URL %s lacks the code or the state", p.URL.Redacted())
	}
	if strings.Contains(p.Body, code) || strings.Contains(p.Body, state) {
		t.Fatal("the callback page shows the code or the state")
	}

	s := v.ReadCreds("myid")
	tok := s.String("access_token")
	if strings.Contains(p.Body, tok) {
		t.Fatal("the callback page shows the token")
	}
	if got := bearerStatus(t, idp.ResourceURL(), tok); got != http.StatusOK {
		t.Fatalf("the IdP answers %d to the token, want 200", got)
	}
	if d := math.Abs(float64(s.LeaseDuration) - ttl.Seconds()); d > 3 {
		t.Errorf("lease_duration %d, want about %v", s.LeaseDuration, ttl.Seconds())
	}
	if s.String("scope") != "myid.rest.basic" {
		t.Errorf("scope %q", s.String("scope"))
	}
	if again := v.ReadCreds("myid"); again.String("access_token") != tok {
		t.Error("second read returned another token, want the cached one")
	}

	// The same callback again: the state is spent, the IdP is not asked.
	before := idp.TokenRequests()
	if replay := br.get(p.URL.String()); replay.Status != http.StatusBadRequest || !strings.Contains(replay.Body, "already completed") {
		t.Fatalf("replayed callback answered %d:\n%s", replay.Status, replay.Body)
	}
	if idp.TokenRequests() != before {
		t.Error("a replayed callback reached the IdP")
	}

	// The CLI form of the callback, and a redirect_uri not on the list.
	loginURL, state = v.authURL("myid")
	var w Secret
	v.JSON(&w, "write", "idp/callback", "code="+loginCode(t, loginURL), "state="+state)
	if w.String("role") != "myid" || w.String("expires_at") == "" {
		t.Fatalf("callback write answered %+v", w.Data)
	}
	if r := v.CLI("write", "idp/auth-url/myid", "redirect_uri=https://evil.example/cb"); r.Err == nil || !strings.Contains(r.Stderr, "redirect_uri") {
		t.Fatalf("a foreign redirect_uri: err=%v stderr=%s", r.Err, r.Stderr)
	}

	// After expiry MyID (no refresh token) needs a new login.
	time.Sleep(ttl)
	if r := v.CLI("read", "idp/creds/myid"); r.Err == nil || !strings.Contains(r.Stderr, "needs a login") {
		t.Fatalf("creds after expiry: err=%v stderr=%s", r.Err, r.Stderr)
	}
}

// TestAuthCodeOIDCProvider: panva/oidc-provider's own login and consent
// pages (devInteractions), driven like a browser with a cookie jar, redirect
// to Vault's callback; creds then hands out a token the provider vouches for,
// and refreshes it with the refresh token it issued.
func TestAuthCodeOIDCProvider(t *testing.T) {
	t.Parallel()
	v := StartDevVault(t)
	const ttl = 10 * time.Second
	op := StartOIDCProvider(t, ttl, "OIDC_REDIRECT_URI="+v.callbackURL())
	v.Write("idp/config/op-code", "provider=oauth2", "token_url="+op.Issuer+"/token", "auth_url="+op.Issuer+"/auth",
		"client_id=code-client", "client_secret="+oidcClientSecret, "client_auth=basic",
		"redirect_uris="+v.callbackURL())
	v.Write("idp/roles/op-code", "config=op-code", "grant_type=authorization_code", "scopes=openid,offline_access,api:read")

	loginURL, _ := v.authURL("op-code")
	br := newBrowser(t)
	p := br.get(loginURL)
	for step := 0; step < 4 && p.URL.Path != "/v1/idp/callback"; step++ {
		p = br.submitForm(p, map[string]string{"login": "alice", "password": "any"})
	}
	atCallback(t, v, p)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Login complete") {
		t.Fatalf("callback answered %d:\n%s", p.Status, p.Body)
	}

	s := v.ReadCreds("op-code")
	tok := s.String("access_token")
	in := op.Introspect(t, "code-client", tok)
	if in["active"] != true || in["sub"] != "alice" {
		t.Fatalf("introspection: %v", in)
	}
	if d := math.Abs(float64(s.LeaseDuration) - ttl.Seconds()); d > 3 {
		t.Errorf("lease_duration %d, want about %v", s.LeaseDuration, ttl.Seconds())
	}

	// Expired: refreshed with the refresh token from the code exchange.
	time.Sleep(ttl + time.Second)
	s2 := v.ReadCreds("op-code")
	if s2.String("access_token") == tok {
		t.Fatal("after expiry creds returned the old token")
	}
	if in := op.Introspect(t, "code-client", s2.String("access_token")); in["active"] != true || in["sub"] != "alice" {
		t.Fatalf("introspection of the refreshed token: %v", in)
	}
}
