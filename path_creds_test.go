package idptokens

import (
	"encoding/base64"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// Each preset reads a working token through creds/<role>, speaking its
// document's wire format (the fake IdP refuses anything else).
func TestCredsEachPreset(t *testing.T) {
	cases := []struct {
		name  string
		setup func(e *testEnv) *fakeidp.Server
		scope string
		idTok bool
		// how the client authenticated, as the IdP received it
		auth, clientID, secret string
	}{
		{"mwi", func(e *testEnv) *fakeidp.Server { return e.setupMWI(fakeidp.Options{}) }, "test_api", false, rawBasic, "client", mwiClientSecret},
		{"screening-eagle", func(e *testEnv) *fakeidp.Server {
			idp, url := startIdP(e.t, fakeidp.Options{Style: fakeidp.StyleScreeningEagle, ClientID: "se", ClientSecret: seClientSecret, IDTokens: true, RefreshTokens: true})
			e.ok(logical.UpdateOperation, "config/se", map[string]any{"provider": "screening-eagle", "token_url": url, "client_id": "se", "client_secret": seClientSecret})
			e.ok(logical.UpdateOperation, "roles/screening-eagle", map[string]any{"config": "se", "scopes": "openid,email,profile,inspect"})
			return idp
		}, "openid email profile inspect", true, rawBasic, "se", seClientSecret},
		{"microtek", func(e *testEnv) *fakeidp.Server {
			idp, url := startIdP(e.t, fakeidp.Options{Style: fakeidp.StyleMicroTek, ClientID: "00000000-0000-0000-0000-000000000000", ClientSecret: mtClientSecret})
			e.ok(logical.UpdateOperation, "config/mt", map[string]any{"provider": "microtek", "token_url": url, "client_id": "00000000-0000-0000-0000-000000000000", "client_secret": mtClientSecret})
			e.ok(logical.UpdateOperation, "roles/microtek", map[string]any{"config": "mt"})
			return idp
		}, "public-api", false, formBody, "00000000-0000-0000-0000-000000000000", mtClientSecret},
		{"oauth2", func(e *testEnv) *fakeidp.Server {
			idp, url := startIdP(e.t, fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "app", ClientSecret: oauth2ClientSecret, Scopes: []string{"read", "write"}, ExpiresInAsString: true})
			e.ok(logical.UpdateOperation, "config/generic", map[string]any{"token_url": url, "client_id": "app", "client_secret": oauth2ClientSecret})
			e.ok(logical.UpdateOperation, "roles/oauth2", map[string]any{"config": "generic", "scopes": "read,write", "extra_params": map[string]any{"audience": "api://x"}})
			return idp
		}, "read write", false, formBasic, "app", oauth2ClientSecret},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t)
			idp := c.setup(e)
			resp := e.creds(c.name)
			tok := resp.Data["access_token"].(string)
			if !idp.Valid(tok) {
				t.Fatalf("the IdP does not accept the token %q", tok)
			}
			checkClientAuth(t, idp.LastRequest(), c.auth, c.clientID, c.secret)
			if resp.Data["expires_from"] != "expires_in" {
				t.Fatalf("expires_from = %v, want expires_in", resp.Data["expires_from"])
			}
			if resp.Data["token_type"] != "Bearer" || resp.Data["scope"] != c.scope {
				t.Fatalf("token_type=%v scope=%v, want Bearer %q", resp.Data["token_type"], resp.Data["scope"], c.scope)
			}
			if _, has := resp.Data["id_token"]; has != c.idTok {
				t.Fatalf("id_token present=%v, want %v", has, c.idTok)
			}
			for _, k := range []string{"refresh_token", "client_secret"} {
				if _, has := resp.Data[k]; has {
					t.Fatalf("creds leaked %s", k)
				}
			}
			if ttl := leaseTTL(resp); ttl < time.Hour-3*time.Second || ttl > time.Hour {
				t.Fatalf("lease TTL %s, want the token's 1h less at most a few seconds", ttl)
			}
			if resp.Secret.Renewable || resp.Secret.MaxTTL != resp.Secret.TTL {
				t.Fatalf("lease renewable=%v max=%s ttl=%s; want not renewable, max = ttl", resp.Secret.Renewable, resp.Secret.MaxTTL, resp.Secret.TTL)
			}
			exp, err := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
			if err != nil || exp.Sub(time.Now()) < 59*time.Minute {
				t.Fatalf("expires_at %v (%v), want about an hour from now", resp.Data["expires_at"], err)
			}
			again := e.creds(c.name)
			if again.Data["access_token"] != tok || idp.TokenRequests() != 1 {
				t.Fatalf("second read: same token=%v, IdP requests=%d; want the cached token and one request",
					again.Data["access_token"] == tok, idp.TokenRequests())
			}
		})
	}
}

// How a preset's client authentication reaches the IdP.
const (
	rawBasic  = "raw Basic"          // base64(id:secret), as MWI and Screening Eagle document
	formBasic = "form-encoded Basic" // RFC 6749 2.3.1: each half form-encoded first
	formBody  = "form body"          // client_id and client_secret in the body
)

// checkClientAuth: the request carried the client's credentials in exactly
// the given form, and in no other.
func checkClientAuth(t *testing.T, r fakeidp.Recorded, how, id, secret string) {
	t.Helper()
	header := r.Header.Get("Authorization")
	switch how {
	case rawBasic, formBasic:
		want := id + ":" + secret
		if how == formBasic {
			want = url.QueryEscape(id) + ":" + url.QueryEscape(secret)
		}
		if header != "Basic "+base64.StdEncoding.EncodeToString([]byte(want)) {
			t.Errorf("Authorization %q, want %s of %q", header, how, want)
		}
		if r.Form.Has("client_secret") {
			t.Error("the client secret is also in the body")
		}
	case formBody:
		if header != "" || r.Form.Get("client_id") != id || r.Form.Get("client_secret") != secret {
			t.Errorf("Authorization %q, body client_id %q: want the credentials in the body only", header, r.Form.Get("client_id"))
		}
	}
}

func TestCredsWireFormatMWI(t *testing.T) {
	e := newTestEnv(t)
	idp := e.setupMWI(fakeidp.Options{})
	e.creds("mwi")
	r := idp.LastRequest()
	if got := r.Form.Get("username"); got != mwiComposed {
		t.Fatalf("username %q, want %q", got, mwiComposed)
	}
	if r.Form.Get("grant_type") != "password" || r.Form.Get("scope") != "test_api" || r.Form.Get("password") != mwiPassword {
		t.Fatalf("form %v", r.Form)
	}
	if r.Form.Has("client_secret") || !strings.HasPrefix(r.Header.Get("Authorization"), "Basic ") {
		t.Fatalf("MWI wants Basic client auth only: form %v header %q", r.Form, r.Header.Get("Authorization"))
	}
}

// Concurrent reads of a cold role make exactly one IdP request.
func TestCredsSingleFlight(t *testing.T) {
	e := newTestEnv(t)
	idp := e.setupMWI(fakeidp.Options{})
	idp.SetDelay(100 * time.Millisecond)
	var wg sync.WaitGroup
	tokens := make([]string, 50)
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.do(logical.ReadOperation, "creds/mwi", nil)
			if err == nil && !resp.IsError() {
				tokens[i] = resp.Data["access_token"].(string)
			}
		}()
	}
	wg.Wait()
	if n := idp.TokenRequests(); n != 1 {
		t.Fatalf("%d IdP requests for 50 concurrent cold reads, want 1", n)
	}
	for _, tok := range tokens {
		if tok != tokens[0] || tok == "" {
			t.Fatalf("readers got different or no tokens: %q vs %q", tok, tokens[0])
		}
	}
}

// A restart, plugin reload or failover (a new backend on the same storage)
// reuses the stored token.
func TestCredsSurviveRestart(t *testing.T) {
	e := newTestEnv(t)
	idp := e.setupMWI(fakeidp.Options{})
	tok := e.creds("mwi").Data["access_token"]
	again := newTestEnv(t, onStorage(e.storage)).creds("mwi").Data["access_token"]
	if again != tok || idp.TokenRequests() != 1 {
		t.Fatalf("after restart: same=%v requests=%d", again == tok, idp.TokenRequests())
	}
}

// A token nearing expiry is replaced; min_ttl (role or read) decides when.
func TestCredsMinTTL(t *testing.T) {
	e := newTestEnv(t)
	idp := e.setupMWI(fakeidp.Options{TokenTTL: time.Hour})
	clock := fakeclock.New(time.Now())
	e.b.now = clock.Now
	first := e.creds("mwi").Data["access_token"]

	clock.Advance(50 * time.Minute) // 10 minutes left
	if e.creds("mwi").Data["access_token"] != first {
		t.Fatal("a token with 10m left and no min_ttl should be reused")
	}
	resp := e.ok(logical.ReadOperation, "creds/mwi", map[string]any{"min_ttl": 900})
	if resp.Data["access_token"] == first || idp.TokenRequests() != 2 {
		t.Fatalf("min_ttl=15m with 10m left must fetch a new token (requests=%d)", idp.TokenRequests())
	}
	if len(resp.Warnings) != 0 {
		t.Errorf("a met min_ttl warned: %v", resp.Warnings)
	}
	// A reader's min_ttl above half the lifetime is not met, and both reads
	// say so rather than handing out less in silence.
	clock.Advance(10 * time.Minute) // the new token has 50m left: more than half its life, less than 59m
	for _, path := range []string{"creds/mwi", "token/mwi"} {
		short := e.ok(logical.ReadOperation, path, map[string]any{"min_ttl": "59m"})
		if idp.TokenRequests() != 2 || len(short.Warnings) != 1 || !strings.Contains(short.Warnings[0], "less than the min_ttl of 59m0s") {
			t.Errorf("%s min_ttl=59m with 50m left: requests %d, warnings %q; want the token reused with a warning naming min_ttl", path, idp.TokenRequests(), short.Warnings)
		}
	}
	e.ok(logical.UpdateOperation, "roles/mwi", map[string]any{"min_ttl": 3600})
	e.creds("mwi")
	if idp.TokenRequests() != 2 {
		t.Fatalf("min_ttl above half the lifetime is capped; a fresh token must be reused (requests=%d)", idp.TokenRequests())
	}
}

// A refresh token renews; a refused refresh falls back to the role's grant.
func TestCredsRefresh(t *testing.T) {
	e := newTestEnv(t)
	idp, url := startIdP(t, fakeidp.Options{Style: fakeidp.StyleScreeningEagle, ClientID: "se", ClientSecret: seClientSecret, RefreshTokens: true})
	e.ok(logical.UpdateOperation, "config/se", map[string]any{"provider": "screening-eagle", "token_url": url, "client_id": "se", "client_secret": seClientSecret})
	e.ok(logical.UpdateOperation, "roles/se", map[string]any{"config": "se", "scopes": "inspect"})
	clock := fakeclock.New(time.Now())
	e.b.now = clock.Now
	e.creds("se")
	clock.Advance(2 * time.Hour)
	tok := e.creds("se").Data["access_token"].(string)
	if idp.TokenRequestsByGrant("refresh_token") != 1 || !idp.Valid(tok) {
		t.Fatalf("expected one refresh giving a valid token; by grant: refresh=%d", idp.TokenRequestsByGrant("refresh_token"))
	}
	idp.RevokeAll() // the refresh token dies too
	clock.Advance(2 * time.Hour)
	tok = e.creds("se").Data["access_token"].(string)
	if idp.TokenRequestsByGrant("refresh_token") != 2 || idp.TokenRequestsByGrant("client_credentials") != 2 || !idp.Valid(tok) {
		t.Fatalf("a refused refresh must fall back to client_credentials: refresh=%d cc=%d",
			idp.TokenRequestsByGrant("refresh_token"), idp.TokenRequestsByGrant("client_credentials"))
	}
}

// MicroTek keeps one live token per client: roles of one config share it.
func TestMicroTekRolesShareOneToken(t *testing.T) {
	e := newTestEnv(t)
	idp, url := startIdP(t, fakeidp.Options{Style: fakeidp.StyleMicroTek, ClientID: "mt", ClientSecret: mtClientSecret})
	e.ok(logical.UpdateOperation, "config/mt", map[string]any{"provider": "microtek", "token_url": url, "client_id": "mt", "client_secret": mtClientSecret})
	e.ok(logical.UpdateOperation, "roles/team-a", map[string]any{"config": "mt"})
	e.ok(logical.UpdateOperation, "roles/team-b", map[string]any{"config": "mt"})
	a := e.creds("team-a").Data["access_token"].(string)
	b := e.creds("team-b").Data["access_token"].(string)
	if a != b || idp.TokenRequests() != 1 || !idp.Valid(a) {
		t.Fatalf("roles of one MicroTek client must share one live token: same=%v requests=%d valid=%v", a == b, idp.TokenRequests(), idp.Valid(a))
	}
	e.fails(logical.UpdateOperation, "roles/team-c", map[string]any{"config": "mt", "extra_params": map[string]any{"audience": "x"}}, "one live token per client")
	// Deleting one role keeps the shared token for the other.
	e.ok(logical.DeleteOperation, "roles/team-a", nil)
	if e.creds("team-b").Data["access_token"] != a || idp.TokenRequests() != 1 {
		t.Fatal("deleting a role dropped the token its sibling shares")
	}
	// Deleting the last role leaves the token to a role written again (the
	// docs/idps.md says: drop first to revoke it).
	e.ok(logical.DeleteOperation, "roles/team-b", nil)
	e.ok(logical.UpdateOperation, "roles/team-b", map[string]any{"config": "mt"})
	if e.creds("team-b").Data["access_token"] != a || idp.TokenRequests() != 1 || !idp.Valid(a) {
		t.Fatal("deleting the last role of a MicroTek config dropped or revoked the shared token")
	}
}

// IdP errors say which config, the status, and what the IdP said.
func TestCredsIdPErrors(t *testing.T) {
	e := newTestEnv(t)
	idp, url := startIdP(t, fakeidp.Options{Style: fakeidp.StyleScreeningEagle, ClientID: "se", ClientSecret: "right"})
	e.ok(logical.UpdateOperation, "config/se", map[string]any{"provider": "screening-eagle", "token_url": url, "client_id": "se", "client_secret": "wrong-secret"})
	e.ok(logical.UpdateOperation, "roles/se", map[string]any{"config": "se", "scopes": "inspect"})
	msg := e.fails(logical.ReadOperation, "creds/se", nil, `config "se"`)
	for _, want := range []string{"HTTP 401", "invalid_client"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "wrong-secret") {
		t.Fatalf("error leaks the secret: %q", msg)
	}
	_ = idp
	e.fails(logical.ReadOperation, "creds/nope", nil, `no role named "nope"`)
}

// expires_in missing: default_token_ttl decides, or the user reads why not.
func TestCredsMissingExpiresIn(t *testing.T) {
	e := newTestEnv(t)
	_, url := startIdP(t, fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "c", ClientSecret: "s", OmitExpiresIn: true})
	e.ok(logical.UpdateOperation, "config/c", map[string]any{"token_url": url, "client_id": "c", "client_secret": "s"})
	e.ok(logical.UpdateOperation, "roles/r", map[string]any{"config": "c"})
	e.fails(logical.ReadOperation, "creds/r", nil, "default_token_ttl")
	e.ok(logical.UpdateOperation, "config/c", map[string]any{"default_token_ttl": 300})
	resp := e.creds("r")
	if ttl := leaseTTL(resp); ttl < 297*time.Second || ttl > 300*time.Second {
		t.Fatalf("lease %s, want default_token_ttl 5m", ttl)
	}
	if resp.Data["expires_from"] != "default_token_ttl" {
		t.Fatalf("expires_from = %v, want default_token_ttl", resp.Data["expires_from"])
	}
}
