//go:build integration

package integration

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// FakeIdP is an in-process fake identity provider on a loopback port.
type FakeIdP struct {
	*fakeidp.Server
	URL  string
	opts fakeidp.Options
}

// TokenURL is the style's token endpoint.
func (f *FakeIdP) TokenURL() string { return f.URL + f.TokenPath() }

// ResourceURL answers 200 to a working bearer token and 401 otherwise.
func (f *FakeIdP) ResourceURL() string { return f.URL + "/api/resource" }

// StartFakeIdP serves fakeidp.New(opts) with httptest (127.0.0.1) until the test ends.
func StartFakeIdP(t *testing.T, opts fakeidp.Options) *FakeIdP {
	t.Helper()
	srv := fakeidp.New(opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &FakeIdP{Server: srv, URL: hs.URL, opts: opts}
}

// preset is one provider preset: how to run its fake IdP and how a user configures it.
type preset struct {
	provider string
	opts     fakeidp.Options
	grant    string
	// config returns the key=value arguments of `vault write idp/config/<name>`.
	config func(f *FakeIdP) []string
	// login, when set, is how a person logs in (authorization code) before
	// creds has a token; the fake then accepts Vault's callback as redirect_uri.
	login func(t *testing.T, v *Vault, role string)
}

// browserLogin follows the login URL of idp/auth-url/<role> in a browser
// stand-in: the fake IdP approves at once and sends it to Vault's callback.
func browserLogin(t *testing.T, v *Vault, role string) {
	t.Helper()
	loginURL, _ := v.authURL(role)
	p := newBrowser(t).get(loginURL)
	atCallback(t, v, p)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Login complete") {
		t.Fatalf("callback answered %d:\n%s", p.Status, p.Body)
	}
}

// Client secrets of the presets. Each holds + / : % and a non-ASCII letter,
// so that raw Basic (MWI, Screening Eagle), form-encoded Basic (oauth2) and
// the form body (MicroTek) all look different on the wire: the fake IdP,
// strict about its style, refuses a preset that sends the wrong one.
const (
	mwiSecret      = "mwi+client/secret:%41é"
	seSecret       = "se+client/secret:%41ü"
	microtekSecret = "mt+client/secret:%41ø"
	oauth2Secret   = "oauth2+client/secret:%41ñ"
)

func presets(ttl time.Duration) []preset {
	return []preset{
		{
			provider: "mwi",
			opts: fakeidp.Options{
				Style: fakeidp.StyleMWI, ClientID: "mwi-client", ClientSecret: mwiSecret,
				Username: `lbso\AC-1234\operator7\SK-5678`, Password: "operator-password", TokenTTL: ttl,
			},
			grant: "password",
			config: func(f *FakeIdP) []string {
				return []string{"provider=mwi", "token_url=" + f.TokenURL(),
					"client_id=mwi-client", "client_secret=" + mwiSecret,
					"username=operator7", "password=operator-password",
					"access_code=AC-1234", "security_key=SK-5678", "scopes=test_api"}
			},
		},
		{
			provider: "screening-eagle",
			opts: fakeidp.Options{
				Style: fakeidp.StyleScreeningEagle, ClientID: "se-client", ClientSecret: seSecret,
				IDTokens: true, TokenTTL: ttl,
			},
			grant: "client_credentials",
			config: func(f *FakeIdP) []string {
				return []string{"provider=screening-eagle", "token_url=" + f.TokenURL(),
					"client_id=se-client", "client_secret=" + seSecret, "scopes=openid,inspect"}
			},
		},
		{
			provider: "microtek",
			opts: fakeidp.Options{
				Style: fakeidp.StyleMicroTek, ClientID: "00000000-0000-0000-0000-000000000001",
				ClientSecret: microtekSecret, TokenTTL: ttl,
			},
			grant: "client_credentials",
			config: func(f *FakeIdP) []string {
				return []string{"provider=microtek", "token_url=" + f.TokenURL(),
					"client_id=00000000-0000-0000-0000-000000000001", "client_secret=" + microtekSecret,
					"scopes=public-api"}
			},
		},
		{
			provider: "oauth2",
			opts: fakeidp.Options{
				Style: fakeidp.StyleOAuth2, ClientID: "oauth2-client", ClientSecret: oauth2Secret,
				Scopes: []string{"read", "write"}, TokenTTL: ttl,
			},
			grant: "client_credentials",
			config: func(f *FakeIdP) []string {
				return []string{"provider=oauth2", "token_url=" + f.TokenURL(),
					"client_id=oauth2-client", "client_secret=" + oauth2Secret, "scopes=read,write"}
			},
		},
		{
			provider: "myid",
			opts: fakeidp.Options{
				Style: fakeidp.StyleMyID, ClientID: "myid-client", ClientSecret: "myid-secret", TokenTTL: ttl,
			},
			grant: "authorization_code",
			config: func(f *FakeIdP) []string {
				return []string{"provider=myid", "token_url=" + f.TokenURL(), "auth_url=" + f.URL + "/connect/authorize",
					"client_id=myid-client", "client_secret=myid-secret",
					"redirect_uris=" + strings.Join(f.opts.RedirectURIs, ",")}
			},
			login: browserLogin,
		},
	}
}
