package fakeidp

import (
	"net/http"
	"testing"
)

// wireCase mutates a known-good request; wantStatus 200 means it must work
// (and, when wantKeys is set, carry exactly those optional members).
type wireCase struct {
	name       string
	mutate     func(c *call)
	wantStatus int
	wantCode   string
	wantKeys   []string // optional success members that must be present
}

func runWire(t *testing.T, o Options, good func(s *Server) call, cases []wireCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := newFake(t, o)
			c := good(s)
			if tc.mutate != nil {
				tc.mutate(&c)
			}
			r := do(t, ts, s, c)
			if tc.wantStatus == http.StatusOK {
				body := wantToken(t, r, tc.wantKeys...)
				if resource(t, ts, body["access_token"].(string)) != http.StatusOK {
					t.Fatal("issued token does not work at /api/resource")
				}
				return
			}
			if tc.wantCode == "" { // not an IdP answer, e.g. the mux's 404
				if r.status != tc.wantStatus {
					t.Fatalf("status = %d, want %d", r.status, tc.wantStatus)
				}
				return
			}
			wantError(t, s, r, tc.wantStatus, tc.wantCode)
		})
	}
}

// Rules every style shares: method, media type, query string, duplicates.
func commonCases() []wireCase {
	return []wireCase{
		{name: "GET", mutate: func(c *call) { c.method = http.MethodGet }, wantStatus: 405, wantCode: "invalid_request"},
		{name: "json content type", mutate: func(c *call) { c.ctype = "application/json" }, wantStatus: 400, wantCode: "invalid_request"},
		{name: "no content type", mutate: func(c *call) { c.ctype = "-" }, wantStatus: 400, wantCode: "invalid_request"},
		{name: "content type with charset", mutate: func(c *call) { c.ctype = "application/x-www-form-urlencoded; charset=utf-8" }, wantStatus: 200},
		{name: "params in query", mutate: func(c *call) { c.query = "grant_type=x" }, wantStatus: 400, wantCode: "invalid_request"},
		{name: "duplicate param", mutate: func(c *call) { c.raw = c.form.Encode() + "&grant_type=" + c.form.Get("grant_type") }, wantStatus: 400, wantCode: "invalid_request"},
		{name: "missing grant_type", mutate: func(c *call) { c.form = with(c.form, "grant_type", "-") }, wantStatus: 400, wantCode: "invalid_request"},
	}
}

func TestWireMWI(t *testing.T) {
	o := Options{Style: StyleMWI, ClientID: testID, ClientSecret: testSecret, Username: mwiUser, Password: mwiPass}
	good := func(*Server) call {
		return call{auth: rawBasic(testID, testSecret),
			form: form("grant_type", "password", "username", mwiUser, "password", mwiPass, "scope", "test_api")}
	}
	cases := append(commonCases(),
		wireCase{name: "document request", wantStatus: 200, wantKeys: []string{"expires_in"}},
		wireCase{name: "no Authorization", mutate: func(c *call) { c.auth = "" }, wantStatus: 401, wantCode: "invalid_client"},
		wireCase{name: "form-encoded Basic", mutate: func(c *call) { c.auth = formBasic(testID, testSecret) }, wantStatus: 401, wantCode: "invalid_client"},
		wireCase{name: "wrong secret", mutate: func(c *call) { c.auth = rawBasic(testID, "nope") }, wantStatus: 401, wantCode: "invalid_client"},
		wireCase{name: "Bearer not Basic", mutate: func(c *call) { c.auth = "Bearer x" }, wantStatus: 401, wantCode: "invalid_client"},
		wireCase{name: "credentials in body only", mutate: func(c *call) {
			c.auth = ""
			c.form = with(with(c.form, "client_id", testID), "client_secret", testSecret)
		}, wantStatus: 401, wantCode: "invalid_client"},
		wireCase{name: "client_id in body too", mutate: func(c *call) { c.form = with(c.form, "client_id", testID) }, wantStatus: 400, wantCode: "invalid_request"},
		wireCase{name: "client_credentials grant", mutate: func(c *call) { c.form = with(c.form, "grant_type", "client_credentials") }, wantStatus: 400, wantCode: "unsupported_grant_type"},
		wireCase{name: "refresh grant without refresh tokens", mutate: func(c *call) { c.form = with(c.form, "grant_type", "refresh_token") }, wantStatus: 400, wantCode: "unsupported_grant_type"},
		wireCase{name: "bare username", mutate: func(c *call) { c.form = with(c.form, "username", "testuser") }, wantStatus: 400, wantCode: "invalid_grant"},
		wireCase{name: "slashes not backslashes", mutate: func(c *call) { c.form = with(c.form, "username", "lbso/11112222/testuser/testseckey") }, wantStatus: 400, wantCode: "invalid_grant"},
		wireCase{name: "doubled backslashes", mutate: func(c *call) { c.form = with(c.form, "username", `lbso\\11112222\\testuser\\testseckey`) }, wantStatus: 400, wantCode: "invalid_grant"},
		wireCase{name: "wrong password", mutate: func(c *call) { c.form = with(c.form, "password", "x") }, wantStatus: 400, wantCode: "invalid_grant"},
		wireCase{name: "missing password", mutate: func(c *call) { c.form = with(c.form, "password", "-") }, wantStatus: 400, wantCode: "invalid_request"},
		wireCase{name: "missing scope", mutate: func(c *call) { c.form = with(c.form, "scope", "-") }, wantStatus: 400, wantCode: "invalid_request"},
		wireCase{name: "other scope", mutate: func(c *call) { c.form = with(c.form, "scope", "other_api") }, wantStatus: 400, wantCode: "invalid_scope"},
	)
	runWire(t, o, good, cases)
}

func TestWireScreeningEagle(t *testing.T) {
	o := Options{Style: StyleScreeningEagle, ClientID: testID, ClientSecret: testSecret, IDTokens: true, RefreshTokens: true}
	good := func(*Server) call {
		return call{auth: rawBasic(testID, testSecret),
			form: form("grant_type", "client_credentials", "scope", "openid email profile inspect")}
	}
	all := []string{"expires_in", "scope", "id_token", "refresh_token"}
	cases := append(commonCases(),
		wireCase{name: "document request", wantStatus: 200, wantKeys: all},
		wireCase{name: "one scope", mutate: func(c *call) { c.form = with(c.form, "scope", "inspect") }, wantStatus: 200, wantKeys: all},
		wireCase{name: "wrong path", mutate: func(c *call) { c.path = "/connect/token" }, wantStatus: 404},
		wireCase{name: "no Authorization", mutate: func(c *call) { c.auth = "" }, wantStatus: 401, wantCode: "invalid_client"},
		wireCase{name: "form-encoded Basic", mutate: func(c *call) { c.auth = formBasic(testID, testSecret) }, wantStatus: 401, wantCode: "invalid_client"},
		wireCase{name: "secret in body too", mutate: func(c *call) { c.form = with(c.form, "client_secret", testSecret) }, wantStatus: 400, wantCode: "invalid_request"},
		wireCase{name: "missing scope", mutate: func(c *call) { c.form = with(c.form, "scope", "-") }, wantStatus: 400, wantCode: "invalid_request"},
		wireCase{name: "comma-separated scope", mutate: func(c *call) { c.form = with(c.form, "scope", "openid,email") }, wantStatus: 400, wantCode: "invalid_scope"},
		wireCase{name: "double space", mutate: func(c *call) { c.form = with(c.form, "scope", "openid  email") }, wantStatus: 400, wantCode: "invalid_scope"},
		wireCase{name: "unknown scope", mutate: func(c *call) { c.form = with(c.form, "scope", "openid admin") }, wantStatus: 400, wantCode: "invalid_scope"},
		wireCase{name: "password grant", mutate: func(c *call) { c.form = with(c.form, "grant_type", "password") }, wantStatus: 400, wantCode: "unsupported_grant_type"},
	)
	runWire(t, o, good, cases)
}

func TestWireMicroTek(t *testing.T) {
	o := Options{Style: StyleMicroTek, ClientID: testID, ClientSecret: testSecret}
	good := func(*Server) call {
		return call{form: form("client_id", testID, "grant_type", "client_credentials", "client_secret", testSecret, "scope", "public-api")}
	}
	cases := append(commonCases(),
		wireCase{name: "document request", wantStatus: 200, wantKeys: []string{"expires_in"}},
		wireCase{name: "Basic and body", mutate: func(c *call) { c.auth = rawBasic(testID, testSecret) }, wantStatus: 400, wantCode: "invalid_request"},
		wireCase{name: "Basic only", mutate: func(c *call) {
			c.auth = rawBasic(testID, testSecret)
			c.form = with(with(c.form, "client_id", "-"), "client_secret", "-")
		}, wantStatus: 400, wantCode: "invalid_request"},
		wireCase{name: "missing secret", mutate: func(c *call) { c.form = with(c.form, "client_secret", "-") }, wantStatus: 401, wantCode: "invalid_client"},
		wireCase{name: "wrong secret", mutate: func(c *call) { c.form = with(c.form, "client_secret", "x") }, wantStatus: 401, wantCode: "invalid_client"},
		wireCase{name: "missing scope", mutate: func(c *call) { c.form = with(c.form, "scope", "-") }, wantStatus: 400, wantCode: "invalid_request"},
		wireCase{name: "other scope", mutate: func(c *call) { c.form = with(c.form, "scope", "private-api") }, wantStatus: 400, wantCode: "invalid_scope"},
		wireCase{name: "password grant", mutate: func(c *call) { c.form = with(c.form, "grant_type", "password") }, wantStatus: 400, wantCode: "unsupported_grant_type"},
	)
	runWire(t, o, good, cases)
}

func TestWireMyID(t *testing.T) {
	o := Options{Style: StyleMyID, ClientID: testID, ClientSecret: testSecret, RedirectURIs: []string{redirect}, RefreshTokens: true}
	good := func(s *Server) call {
		code := s.IssueCode(redirect, "myid.rest.basic", "")
		return call{form: form("grant_type", "authorization_code", "client_id", testID, "client_secret", testSecret, "code", code, "redirect_uri", redirect)}
	}
	basic := func(c *call) {
		c.auth = formBasic(testID, testSecret)
		c.form = with(with(c.form, "client_id", "-"), "client_secret", "-")
	}
	cases := append(commonCases(),
		// RefreshTokens is set, yet MyID must never send one.
		wireCase{name: "document request", wantStatus: 200, wantKeys: []string{"expires_in", "scope"}},
		wireCase{name: "Basic instead of body", mutate: basic, wantStatus: 200, wantKeys: []string{"expires_in", "scope"}},
		wireCase{name: "Basic plus client_id", mutate: func(c *call) { basic(c); c.form = with(c.form, "client_id", testID) }, wantStatus: 200, wantKeys: []string{"expires_in", "scope"}},
		wireCase{name: "Basic plus secret", mutate: func(c *call) { c.auth = formBasic(testID, testSecret) }, wantStatus: 400, wantCode: "invalid_request"},
		wireCase{name: "raw Basic with special chars", mutate: func(c *call) { basic(c); c.auth = rawBasic(testID, testSecret) }, wantStatus: 401, wantCode: "invalid_client"},
		wireCase{name: "no client auth", mutate: func(c *call) { c.form = with(with(c.form, "client_id", "-"), "client_secret", "-") }, wantStatus: 401, wantCode: "invalid_client"},
		wireCase{name: "wrong secret", mutate: func(c *call) { c.form = with(c.form, "client_secret", "x") }, wantStatus: 401, wantCode: "invalid_client"},
		wireCase{name: "missing code", mutate: func(c *call) { c.form = with(c.form, "code", "-") }, wantStatus: 400, wantCode: "invalid_request"},
		wireCase{name: "unknown code", mutate: func(c *call) { c.form = with(c.form, "code", "nope") }, wantStatus: 400, wantCode: "invalid_grant"},
		wireCase{name: "missing redirect_uri", mutate: func(c *call) { c.form = with(c.form, "redirect_uri", "-") }, wantStatus: 400, wantCode: "invalid_request"},
		wireCase{name: "other redirect_uri", mutate: func(c *call) { c.form = with(c.form, "redirect_uri", redirect+"/x") }, wantStatus: 400, wantCode: "invalid_grant"},
		wireCase{name: "unasked code_verifier", mutate: func(c *call) { c.form = with(c.form, "code_verifier", verifier) }, wantStatus: 400, wantCode: "invalid_grant"},
		wireCase{name: "client_credentials grant", mutate: func(c *call) { c.form = with(c.form, "grant_type", "client_credentials") }, wantStatus: 400, wantCode: "unsupported_grant_type"},
		wireCase{name: "refresh grant", mutate: func(c *call) { c.form = with(c.form, "grant_type", "refresh_token") }, wantStatus: 400, wantCode: "unsupported_grant_type"},
	)
	runWire(t, o, good, cases)
}

func TestWireOAuth2(t *testing.T) {
	o := Options{Style: StyleOAuth2, ClientID: testID, ClientSecret: testSecret, Username: "alice", Password: "pw", Scopes: []string{"read", "write"}}
	good := func(*Server) call {
		return call{auth: formBasic(testID, testSecret), form: form("grant_type", "client_credentials", "scope", "read write")}
	}
	cases := append(commonCases(),
		wireCase{name: "client_credentials Basic", wantStatus: 200, wantKeys: []string{"expires_in", "scope"}},
		wireCase{name: "no scope", mutate: func(c *call) { c.form = with(c.form, "scope", "-") }, wantStatus: 200, wantKeys: []string{"expires_in"}},
		wireCase{name: "credentials in body", mutate: func(c *call) {
			c.auth = ""
			c.form = with(with(c.form, "client_id", testID), "client_secret", testSecret)
		}, wantStatus: 200, wantKeys: []string{"expires_in", "scope"}},
		wireCase{name: "raw Basic with special chars", mutate: func(c *call) { c.auth = rawBasic(testID, testSecret) }, wantStatus: 401, wantCode: "invalid_client"},
		wireCase{name: "both methods", mutate: func(c *call) { c.form = with(c.form, "client_secret", testSecret) }, wantStatus: 400, wantCode: "invalid_request"},
		wireCase{name: "unknown scope", mutate: func(c *call) { c.form = with(c.form, "scope", "admin") }, wantStatus: 400, wantCode: "invalid_scope"},
		wireCase{name: "password grant", mutate: func(c *call) {
			c.form = form("grant_type", "password", "username", "alice", "password", "pw")
		}, wantStatus: 200, wantKeys: []string{"expires_in"}},
		wireCase{name: "password grant wrong password", mutate: func(c *call) {
			c.form = form("grant_type", "password", "username", "alice", "password", "x")
		}, wantStatus: 400, wantCode: "invalid_grant"},
		wireCase{name: "implicit grant", mutate: func(c *call) { c.form = with(c.form, "grant_type", "implicit") }, wantStatus: 400, wantCode: "unsupported_grant_type"},
	)
	runWire(t, o, good, cases)
}
