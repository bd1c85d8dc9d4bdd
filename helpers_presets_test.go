package idptokens

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

const mtClient = "00000000-0000-0000-0000-000000000000"

// microTekEnv is a backend, a MicroTek fake with ttl-long tokens and one
// fake clock for both.
type microTekEnv struct {
	*testEnv
	idp   *fakeidp.Server
	url   string
	clock *fakeclock.Clock
}

func setupMicroTek(t *testing.T, ttl time.Duration) *microTekEnv {
	t.Helper()
	clock := fakeclock.New(testT0)
	e := newTestEnv(t, withClock(clock))
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

// stdIdP is a fake IdP (oauth2 style, serving its discovery metadata)
// behind a server that records revocation requests.
type stdIdP struct {
	*fakeidp.Server
	srv     *httptest.Server
	mu      sync.Mutex
	revoked []url.Values
}

func startStdIdP(t *testing.T, opts fakeidp.Options) *stdIdP {
	t.Helper()
	opts.Style = fakeidp.StyleOAuth2
	s := &stdIdP{Server: fakeidp.New(opts)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/connect/revocation":
			body, _ := io.ReadAll(r.Body)
			form, _ := url.ParseQuery(string(body))
			s.mu.Lock()
			s.revoked = append(s.revoked, form)
			s.mu.Unlock()
			r.Body = io.NopCloser(strings.NewReader(string(body)))
		}
		s.Server.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stdIdP) revocations() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.revoked...)
}

const stdSecret = "std-secret-1234"

// authEnv is a backend with an authorization_code role against a fake IdP
// whose authorize endpoint approves at once.
type authEnv struct {
	*testEnv
	idp  *fakeidp.Server
	base string
	role string
}

// setupMyID: config "myid" (provider myid, client auth in the body) and
// role "myid" against a fake MyID.
func setupMyID(t *testing.T, opts fakeidp.Options, extraConfig map[string]any) *authEnv {
	t.Helper()
	e := newTestEnv(t)
	opts.Style, opts.ClientID, opts.ClientSecret = fakeidp.StyleMyID, myidClient, myidSecret
	opts.RedirectURIs = []string{vaultCallback, vaultCallback2}
	idp := fakeidp.New(opts)
	srv := httptest.NewServer(idp)
	t.Cleanup(srv.Close)
	cfg := map[string]any{
		"provider": "myid", "token_url": srv.URL + idp.TokenPath(), "auth_url": srv.URL + "/connect/authorize",
		"client_id": myidClient, "client_secret": myidSecret, "redirect_uris": vaultCallback + "," + vaultCallback2,
	}
	for k, v := range extraConfig {
		cfg[k] = v
	}
	e.ok(logical.UpdateOperation, "config/myid", cfg)
	e.ok(logical.UpdateOperation, "roles/myid", map[string]any{"config": "myid"})
	return &authEnv{testEnv: e, idp: idp, base: srv.URL, role: "myid"}
}

// setupOAuth2Refresh: a generic OAuth2 IdP that issues refresh tokens.
func setupOAuth2Refresh(t *testing.T) *authEnv {
	t.Helper()
	e := newTestEnv(t)
	idp := fakeidp.New(fakeidp.Options{
		Style: fakeidp.StyleOAuth2, ClientID: "app", ClientSecret: "app-secret", Scopes: []string{"read", "write"},
		RefreshTokens: true, RedirectURIs: []string{vaultCallback},
	})
	srv := httptest.NewServer(idp)
	t.Cleanup(srv.Close)
	e.ok(logical.UpdateOperation, "config/generic", map[string]any{
		"token_url": srv.URL + idp.TokenPath(), "auth_url": srv.URL + "/connect/authorize",
		"client_id": "app", "client_secret": "app-secret", "redirect_uris": vaultCallback,
	})
	e.ok(logical.UpdateOperation, "roles/app", map[string]any{"config": "generic", "grant_type": "authorization_code", "scopes": "read,write"})
	return &authEnv{testEnv: e, idp: idp, base: srv.URL, role: "app"}
}

// begin writes auth-url/<role> and returns the URL and state.
func (a *authEnv) begin(role string, data map[string]any) (*url.URL, string) {
	a.t.Helper()
	resp := a.ok(logical.UpdateOperation, "auth-url/"+role, data)
	u, err := url.Parse(resp.Data["url"].(string))
	if err != nil {
		a.t.Fatal(err)
	}
	return u, resp.Data["state"].(string)
}

// browse is the browser at the IdP: GET the authorize URL, do not follow the
// redirect, return the query of the Location Vault would receive.
func (a *authEnv) browse(u *url.URL) url.Values {
	a.t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(u.String())
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		a.t.Fatalf("authorize answered %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		a.t.Fatal(err)
	}
	return loc.Query()
}

// login runs auth-url and the browser step; it returns the callback query.
func (a *authEnv) login(role string) url.Values {
	a.t.Helper()
	u, state := a.begin(role, nil)
	q := a.browse(u)
	if q.Get("state") != state {
		a.t.Fatalf("the IdP returned state %q, want %q", q.Get("state"), state)
	}
	if q.Get("code") == "" {
		a.t.Fatalf("the IdP returned no code: %v", q)
	}
	return q
}

// callbackGET is the browser's unauthenticated GET of idp/callback.
func (a *authEnv) callbackGET(q url.Values) (status int, page string) {
	a.t.Helper()
	data := map[string]any{}
	for k := range q {
		data[k] = q.Get(k)
	}
	resp, err := a.do(logical.ReadOperation, "callback", data)
	if err != nil {
		a.t.Fatalf("callback: %v", err)
	}
	if ct := resp.Data[logical.HTTPContentType]; !strings.HasPrefix(ct.(string), "text/html") {
		a.t.Fatalf("callback content type %v, want text/html", ct)
	}
	return resp.Data[logical.HTTPStatusCode].(int), string(resp.Data[logical.HTTPRawBody].([]byte))
}

func (a *authEnv) storedStates() []string {
	a.t.Helper()
	keys, err := a.storage.List(context.Background(), authStatePrefix)
	if err != nil {
		a.t.Fatal(err)
	}
	return keys
}

// moveClock sets the backend's clock d ahead of real time.
func (a *authEnv) moveClock(d time.Duration) {
	a.b.now = func() time.Time { return time.Now().Add(d) }
}

// Client secrets of the preset tests. Each holds + / : % and a non-ASCII
// letter, so that its raw Basic form (base64 of id:secret, as MWI and
// Screening Eagle document), its form-encoded Basic form (RFC 6749 2.3.1)
// and its form-body form all differ: the strict fake IdP refuses a preset
// that sends the wrong one.
const (
	mwiClientSecret    = "s3cret+/:x%41é"
	seClientSecret     = "se+s3cret/:%41ü"
	mtClientSecret     = "mt+s3cret/:%41ø"
	oauth2ClientSecret = "a secret&more+/:%41ñ"
)

// Seed credentials, as in the documents' examples.
const (
	mwiAccessCode  = "11112222"
	mwiUser        = "testuser"
	mwiSecurityKey = "testseckey"
	mwiPassword    = "testpassword"
)

var mwiComposed = `lbso\` + mwiAccessCode + `\` + mwiUser + `\` + mwiSecurityKey

// setupMWI writes an MWI config and role "mwi" against a fake MWI IdP.
func (e *testEnv) setupMWI(opts fakeidp.Options) *fakeidp.Server {
	e.t.Helper()
	opts.Style, opts.ClientID, opts.ClientSecret = fakeidp.StyleMWI, "client", mwiClientSecret
	opts.Username, opts.Password = mwiComposed, mwiPassword
	idp, url := startIdP(e.t, opts)
	e.ok(logical.UpdateOperation, "config/mwi", map[string]any{
		"provider": "mwi", "token_url": url, "client_id": "client", "client_secret": mwiClientSecret,
		"access_code": mwiAccessCode, "username": mwiUser, "security_key": mwiSecurityKey, "password": mwiPassword,
	})
	e.ok(logical.UpdateOperation, "roles/mwi", map[string]any{"config": "mwi", "scopes": "test_api"})
	return idp
}

const (
	vaultCallback  = "https://vault.example.com:8200/v1/idp/callback"
	vaultCallback2 = "http://127.0.0.1:8200/v1/idp/callback"
	myidClient     = "myid-client"
	myidSecret     = "myid secret+/:x%41é"
)
