package backend

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Endpoint.RequestToken against an httptest IdP that records every request
// as it arrived on the wire.

// Secrets used by every test here, so that every error can be checked for
// all of them. Each holds characters that encodings change.
const (
	testClientID     = "client-4f2a"
	testClientSecret = "S3cr+t/Val:ue=%x"
	testPassword     = "p@ss w0rd&more"
	testSecurityKey  = "testseckey"
	testRefreshToken = "rt-9f8e7d6c5b4a"
	testCode         = "code-ABCDEF123"
	testVerifier     = "verifier-dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)

var allTestSecrets = []string{testClientSecret, url.QueryEscape(testClientSecret), testPassword,
	url.QueryEscape(testPassword), testSecurityKey, testRefreshToken, testCode, testVerifier}

// noSecrets fails the test if err's message quotes any test secret.
func noSecrets(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range allTestSecrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains the secret %q", err, s)
		}
	}
}

type recordedRequest struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   string // raw, as sent
	Form   url.Values
	Time   time.Time
}

// recordingIdP answers with handle(w, r, n) for the n-th request (from 1)
// after recording it.
type recordingIdP struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []recordedRequest
	handle func(w http.ResponseWriter, r *http.Request, n int)
}

func newRecordingIdP(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) *recordingIdP {
	t.Helper()
	idp := &recordingIdP{handle: handle}
	idp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		idp.mu.Lock()
		idp.reqs = append(idp.reqs, recordedRequest{
			Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(),
			Body: string(body), Form: form, Time: time.Now(),
		})
		n := len(idp.reqs)
		idp.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		idp.handle(w, r, n)
	}))
	t.Cleanup(idp.Close)
	return idp
}

func (s *recordingIdP) requests() []recordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

func (s *recordingIdP) tokenURL() string { return s.URL + "/connect/token" }

func writeJSONBody(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

const okTokenBody = `{"access_token":"AT-1","token_type":"Bearer","expires_in":3600}`

func answerOK(w http.ResponseWriter, _ *http.Request, _ int) {
	writeJSONBody(w, http.StatusOK, okTokenBody)
}

func answerStatus(status int, body string) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) { writeJSONBody(w, status, body) }
}

// newTestEndpoint is an Endpoint set up as the preset sets it, with the real
// HTTP client and no retries unless the test sets Retry.
func newTestEndpoint(t *testing.T, preset, tokenURL string) *Endpoint {
	t.Helper()
	p, err := LookupProvider(preset)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := NewHTTPClient(5*time.Second, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	return &Endpoint{
		Config:       "cfg-" + preset,
		TokenURL:     tokenURL,
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		ClientAuth:   p.ClientAuth,
		RawBasic:     p.RawBasic,
		HTTP:         hc,
		Retry:        RetryPolicy{Attempts: 1},
	}
}

func mwiRequest(t *testing.T) TokenRequest {
	t.Helper()
	p, _ := LookupProvider("mwi")
	user, err := p.ComposeUsername(Operator{AccessCode: "11112222", Username: "testuser", SecurityKey: testSecurityKey, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	return TokenRequest{Grant: GrantPassword, Username: user, Password: testPassword, Scopes: []string{"test_api"},
		Redact: []string{testSecurityKey}}
}

func basicOf(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }

func formKeys(v url.Values) []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestRequestTokenWireFormat(t *testing.T) {
	tests := []struct {
		name       string
		preset     string
		clientAuth ClientAuth // overrides the preset's when set
		req        func(t *testing.T) TokenRequest
		wantAuth   string            // exact Authorization header, "" for none
		wantForm   map[string]string // exactly these fields, decoded
		wantRaw    []string          // substrings of the raw body
	}{
		{
			name:     "mwi password grant, raw Basic",
			preset:   "mwi",
			req:      mwiRequest,
			wantAuth: basicOf(testClientID + ":" + testClientSecret),
			wantForm: map[string]string{
				"grant_type": "password",
				"username":   `lbso\11112222\testuser\testseckey`,
				"password":   testPassword,
				"scope":      "test_api",
			},
			// Backslashes travel form-encoded and decode to literal backslashes.
			wantRaw: []string{`username=lbso%5C11112222%5Ctestuser%5Ctestseckey`, "grant_type=password"},
		},
		{
			name:   "oauth2 client_credentials, RFC 6749 2.3.1 Basic",
			preset: "oauth2",
			req: func(*testing.T) TokenRequest {
				return TokenRequest{Grant: GrantClientCredentials, Scopes: []string{"read", "write"}}
			},
			wantAuth: basicOf(url.QueryEscape(testClientID) + ":" + url.QueryEscape(testClientSecret)),
			wantForm: map[string]string{"grant_type": "client_credentials", "scope": "read write"},
		},
		{
			name:   "microtek client_credentials, credentials in the body",
			preset: "microtek",
			req: func(*testing.T) TokenRequest {
				return TokenRequest{Grant: GrantClientCredentials, Scopes: []string{"public-api"}}
			},
			wantForm: map[string]string{
				"grant_type": "client_credentials", "client_id": testClientID,
				"client_secret": testClientSecret, "scope": "public-api",
			},
		},
		{
			name:   "screening eagle client_credentials, space-separated scopes",
			preset: "screening-eagle",
			req: func(*testing.T) TokenRequest {
				return TokenRequest{Grant: GrantClientCredentials, Scopes: []string{"openid", "email", "profile", "inspect"}}
			},
			wantAuth: basicOf(testClientID + ":" + testClientSecret),
			wantForm: map[string]string{"grant_type": "client_credentials", "scope": "openid email profile inspect"},
			wantRaw:  []string{"scope=openid+email+profile+inspect"},
		},
		{
			name:   "myid authorization_code with PKCE",
			preset: "myid",
			req: func(*testing.T) TokenRequest {
				return TokenRequest{Grant: GrantAuthorizationCode, Code: testCode,
					RedirectURI: "https://vault.example.com/v1/idp/callback", CodeVerifier: testVerifier}
			},
			wantForm: map[string]string{
				"grant_type": "authorization_code", "code": testCode,
				"redirect_uri": "https://vault.example.com/v1/idp/callback",
				"client_id":    testClientID, "client_secret": testClientSecret, "code_verifier": testVerifier,
			},
		},
		{
			name:   "oauth2 authorization_code with Basic: client_id in the body too, never the secret",
			preset: "oauth2",
			req: func(*testing.T) TokenRequest {
				return TokenRequest{Grant: GrantAuthorizationCode, Code: testCode, RedirectURI: "http://127.0.0.1:8250/cb"}
			},
			wantAuth: basicOf(url.QueryEscape(testClientID) + ":" + url.QueryEscape(testClientSecret)),
			wantForm: map[string]string{"grant_type": "authorization_code", "code": testCode,
				"redirect_uri": "http://127.0.0.1:8250/cb", "client_id": testClientID},
		},
		{
			name:   "refresh_token grant",
			preset: "screening-eagle",
			req: func(*testing.T) TokenRequest {
				return TokenRequest{Grant: GrantRefreshToken, RefreshToken: testRefreshToken, Scopes: []string{"openid"}}
			},
			wantAuth: basicOf(testClientID + ":" + testClientSecret),
			wantForm: map[string]string{"grant_type": "refresh_token", "refresh_token": testRefreshToken, "scope": "openid"},
		},
		{
			name:   "extra params sent, reserved ones not overridden",
			preset: "microtek",
			req: func(*testing.T) TokenRequest {
				return TokenRequest{Grant: GrantClientCredentials, Scopes: []string{"public-api"},
					Extra: map[string]string{"audience": "https://api.example.com", "resource": "urn:x",
						"grant_type": "password", "scope": "admin", "client_id": "other"}}
			},
			wantForm: map[string]string{
				"grant_type": "client_credentials", "client_id": testClientID,
				"client_secret": testClientSecret, "scope": "public-api",
				"audience": "https://api.example.com", "resource": "urn:x",
			},
		},
		{
			name:       "oauth2 with client_auth=post",
			preset:     "oauth2",
			clientAuth: ClientAuthPost,
			req: func(*testing.T) TokenRequest {
				return TokenRequest{Grant: GrantClientCredentials}
			},
			wantForm: map[string]string{"grant_type": "client_credentials", "client_id": testClientID, "client_secret": testClientSecret},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idp := newRecordingIdP(t, answerOK)
			e := newTestEndpoint(t, tc.preset, idp.tokenURL())
			if tc.clientAuth != "" {
				e.ClientAuth = tc.clientAuth
			}
			tok, err := e.RequestToken(context.Background(), tc.req(t))
			if err != nil {
				t.Fatalf("RequestToken: %v", err)
			}
			if tok.AccessToken != "AT-1" {
				t.Errorf("AccessToken = %q", tok.AccessToken)
			}
			reqs := idp.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != "/connect/token" || r.Query != "" {
				t.Errorf("request %s %s?%s, want POST /connect/token with no query", r.Method, r.Path, r.Query)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type = %q", ct)
			}
			if got := r.Header.Values("Authorization"); tc.wantAuth == "" && len(got) != 0 {
				t.Errorf("Authorization = %q, want none", got)
			} else if tc.wantAuth != "" && (len(got) != 1 || got[0] != tc.wantAuth) {
				t.Errorf("Authorization = %q, want %q", got, tc.wantAuth)
			}
			if got, want := formKeys(r.Form), formKeys(toValues(tc.wantForm)); !slices.Equal(got, want) {
				t.Errorf("form fields %v, want %v (body %q)", got, want, r.Body)
			}
			for k, want := range tc.wantForm {
				if got := r.Form[k]; len(got) != 1 || got[0] != want {
					t.Errorf("form %s = %q, want [%q]", k, got, want)
				}
			}
			for _, s := range tc.wantRaw {
				if !strings.Contains(r.Body, s) {
					t.Errorf("raw body %q does not contain %q", r.Body, s)
				}
			}
		})
	}
}

func toValues(m map[string]string) url.Values {
	v := url.Values{}
	for k, s := range m {
		v.Set(k, s)
	}
	return v
}

// The raw Basic header of MWI and Screening Eagle must survive secrets that
// RFC 6749 2.3.1 form-encoding would change; oauth2 must form-encode them.
func TestBasicCredentialsEncoding(t *testing.T) {
	secrets := []string{"plain", "a+b", "a/b", "a:b:c", "a=b%2F", "sp ace", "ü-ñ", "+/:%=&?#"}
	for _, preset := range []string{"mwi", "screening-eagle", "oauth2"} {
		for _, secret := range secrets {
			idp := newRecordingIdP(t, answerOK)
			e := newTestEndpoint(t, preset, idp.tokenURL())
			e.ClientSecret = secret
			if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err != nil {
				t.Fatalf("%s: RequestToken: %v", preset, err)
			}
			h := idp.requests()[0].Header.Get("Authorization")
			raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic "))
			if err != nil || !strings.HasPrefix(h, "Basic ") {
				t.Fatalf("%s: Authorization %q is not Basic base64", preset, h)
			}
			id, sec, _ := strings.Cut(string(raw), ":")
			if preset == "oauth2" {
				id, _ = url.QueryUnescape(id)
				sec, _ = url.QueryUnescape(sec)
			}
			if id != testClientID || sec != secret {
				t.Errorf("%s, secret %q: server decodes id %q secret %q", preset, secret, id, sec)
			}
		}
	}
}

func TestRequestTokenIdPErrors(t *testing.T) {
	const seBody = `{"error":"Forbidden","errorDescription":"permission denied"}`
	tests := []struct {
		name       string
		preset     string
		status     int
		body       string
		wantCode   string
		wantDesc   string
		wantDetail string
		temporary  bool
		invalid    bool // IsInvalidGrant
		refusal    bool // IsRefusal
		wantInMsg  []string
	}{
		{name: "screening eagle 400", preset: "screening-eagle", status: 400, body: seBody,
			wantCode: "Forbidden", wantDesc: "permission denied", refusal: true,
			wantInMsg: []string{`"cfg-screening-eagle"`, "HTTP 400", "Forbidden", "permission denied"}},
		{name: "screening eagle 401", preset: "screening-eagle", status: 401, body: seBody,
			wantCode: "Forbidden", wantDesc: "permission denied", refusal: true, wantInMsg: []string{"HTTP 401"}},
		{name: "screening eagle 403", preset: "screening-eagle", status: 403, body: seBody,
			wantCode: "Forbidden", wantDesc: "permission denied", refusal: true, wantInMsg: []string{"HTTP 403"}},
		{name: "screening eagle 404", preset: "screening-eagle", status: 404, body: seBody,
			wantCode: "Forbidden", wantDesc: "permission denied", refusal: true, wantInMsg: []string{"HTTP 404"}},
		{name: "screening eagle 500", preset: "screening-eagle", status: 500, body: seBody,
			wantCode: "Forbidden", wantDesc: "permission denied", temporary: true, wantInMsg: []string{"HTTP 500"}},
		{name: "RFC 6749 invalid_grant", preset: "mwi", status: 400,
			body:     `{"error":"invalid_grant","error_description":"invalid username or password"}`,
			wantCode: "invalid_grant", wantDesc: "invalid username or password", invalid: true, refusal: true,
			wantInMsg: []string{`"cfg-mwi"`, "HTTP 400", "invalid_grant: invalid username or password"}},
		{name: "RFC 6749 invalid_client", preset: "microtek", status: 401,
			body:     `{"error":"invalid_client"}`,
			wantCode: "invalid_client", refusal: true, wantInMsg: []string{"invalid_client"}},
		{name: "error_description preferred over errorDescription", preset: "oauth2", status: 400,
			body:     `{"error":"invalid_scope","error_description":"rfc","errorDescription":"camel"}`,
			wantCode: "invalid_scope", wantDesc: "rfc", refusal: true},
		{name: "429 is temporary", preset: "oauth2", status: 429,
			body: `{"error":"slow_down"}`, wantCode: "slow_down", temporary: true},
		{name: "HTML 502", preset: "oauth2", status: 502, body: "<html><body>Bad Gateway</body></html>",
			wantDetail: "not an OAuth2 error", temporary: true, wantInMsg: []string{"HTTP 502"}},
		{name: "empty 503", preset: "oauth2", status: 503, body: "", temporary: true},
		{name: "200 with HTML", preset: "oauth2", status: 200, body: "<html>login</html>",
			wantDetail: "not JSON"},
		{name: "200 without access_token", preset: "oauth2", status: 200, body: `{"token_type":"Bearer","expires_in":60}`,
			wantDetail: "no access_token"},
		{name: "200 with foreign token_type", preset: "oauth2", status: 200,
			body: `{"access_token":"x","token_type":"MAC","expires_in":60}`, wantDetail: "token_type"},
		{name: "201 is not success", preset: "oauth2", status: 201, body: okTokenBody, refusal: false},
		{name: "control characters stripped", preset: "oauth2", status: 400,
			body:     `{"error":"bad\u0000_request\u001b[31m","error_description":"line1\nline2\ttab"}`,
			wantCode: "bad_request[31m", wantDesc: "line1line2tab", refusal: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idp := newRecordingIdP(t, answerStatus(tc.status, tc.body))
			e := newTestEndpoint(t, tc.preset, idp.tokenURL())
			var req TokenRequest
			if tc.preset == "mwi" {
				req = mwiRequest(t)
			} else {
				req = TokenRequest{Grant: GrantClientCredentials}
			}
			tok, err := e.RequestToken(context.Background(), req)
			if err == nil {
				t.Fatalf("RequestToken = %+v, want an error", tok)
			}
			noSecrets(t, err)
			var ie *IdPError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an *IdPError", err, err)
			}
			if ie.Status != tc.status || ie.Config != "cfg-"+tc.preset {
				t.Errorf("Status %d Config %q, want %d %q", ie.Status, ie.Config, tc.status, "cfg-"+tc.preset)
			}
			if ie.Code != tc.wantCode || ie.Description != tc.wantDesc {
				t.Errorf("Code %q Description %q, want %q %q", ie.Code, ie.Description, tc.wantCode, tc.wantDesc)
			}
			if !strings.Contains(ie.Detail, tc.wantDetail) {
				t.Errorf("Detail %q, want it to contain %q", ie.Detail, tc.wantDetail)
			}
			if ie.Temporary != tc.temporary {
				t.Errorf("Temporary = %v, want %v", ie.Temporary, tc.temporary)
			}
			if IsInvalidGrant(err) != tc.invalid {
				t.Errorf("IsInvalidGrant = %v, want %v", IsInvalidGrant(err), tc.invalid)
			}
			if IsRefusal(err) != tc.refusal {
				t.Errorf("IsRefusal = %v, want %v", IsRefusal(err), tc.refusal)
			}
			for _, s := range append([]string{`"cfg-` + tc.preset + `"`}, tc.wantInMsg...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestIdPErrorLongDescriptionCut(t *testing.T) {
	long := strings.Repeat("é", 2000)
	idp := newRecordingIdP(t, answerStatus(400, `{"error":"`+strings.Repeat("x", 500)+`","error_description":"`+long+`"}`))
	e := newTestEndpoint(t, "oauth2", idp.tokenURL())
	_, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials})
	var ie *IdPError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v is not an *IdPError", err)
	}
	if n := len([]rune(ie.Description)); n != MaxDescriptionRunes+1 || !strings.HasSuffix(ie.Description, "…") {
		t.Errorf("Description has %d runes (%q...), want %d and an ellipsis", n, ie.Description[:20], MaxDescriptionRunes)
	}
	if n := len([]rune(ie.Code)); n != 65 {
		t.Errorf("Code has %d runes, want 64 and an ellipsis", n)
	}
	if len(err.Error()) > 2000 {
		t.Errorf("error is %d bytes long", len(err.Error()))
	}
}

// An IdP that quotes back what it was sent must not make the engine print a
// secret: every secret is replaced with [redacted].
func TestRequestTokenRedactsEchoedSecrets(t *testing.T) {
	basic := base64.StdEncoding.EncodeToString([]byte(testClientID + ":" + testClientSecret))
	mwi := func(t *testing.T) TokenRequest { return mwiRequest(t) }
	tests := []struct {
		name   string
		req    func(t *testing.T) TokenRequest
		echo   string // the secret the IdP quotes
		field  string // where it quotes it
		secret string // what must not come back
	}{
		{"client secret in error_description", mwi, testClientSecret, "error_description", testClientSecret},
		{"url-encoded client secret", mwi, url.QueryEscape(testClientSecret), "error_description", testClientSecret},
		{"url-encoded client secret, encoded form", mwi, url.QueryEscape(testClientSecret), "error_description", url.QueryEscape(testClientSecret)},
		{"password", mwi, "wrong password " + testPassword, "error_description", testPassword},
		{"url-encoded password", mwi, url.QueryEscape(testPassword), "error_description", url.QueryEscape(testPassword)},
		{"composed username", mwi, `user lbso\11112222\testuser\testseckey unknown`, "error_description", testSecurityKey},
		{"security key alone", mwi, "bad key " + testSecurityKey, "error_description", testSecurityKey},
		{"basic credentials", mwi, "Authorization: Basic " + basic, "error_description", basic},
		{"secret in the error code", mwi, testClientSecret, "error", testClientSecret},
		{"secret in errorDescription", mwi, testClientSecret, "errorDescription", testClientSecret},
		{"refresh token", func(*testing.T) TokenRequest {
			return TokenRequest{Grant: GrantRefreshToken, RefreshToken: testRefreshToken}
		}, "refresh token " + testRefreshToken + " was revoked", "error_description", testRefreshToken},
		{"authorization code and verifier", func(*testing.T) TokenRequest {
			return TokenRequest{Grant: GrantAuthorizationCode, Code: testCode, CodeVerifier: testVerifier, RedirectURI: "https://x/cb"}
		}, "code " + testCode + " does not match " + testVerifier, "error_description", testVerifier},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := fmt.Sprintf(`{"error":"invalid_grant",%q:%q}`, tc.field, tc.echo)
			if tc.field == "error" {
				body = fmt.Sprintf(`{"error":%q,"error_description":"x"}`, tc.echo)
			}
			idp := newRecordingIdP(t, answerStatus(400, body))
			e := newTestEndpoint(t, "mwi", idp.tokenURL())
			_, err := e.RequestToken(context.Background(), tc.req(t))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, tc.secret) {
				t.Errorf("error %q contains %q", msg, tc.secret)
			}
			if !strings.Contains(msg, "[redacted]") {
				t.Errorf("error %q does not say [redacted]", msg)
			}
			noSecrets(t, err)
		})
	}
}

// An IdP that echoes the whole request, headers and body, as its error.
func TestRequestTokenRedactsEchoedRequest(t *testing.T) {
	idp := newRecordingIdP(t, func(w http.ResponseWriter, r *http.Request, n int) {
		body, _ := io.ReadAll(r.Body)
		echo := "Authorization: " + r.Header.Get("Authorization") + " body: " + string(body)
		writeJSONBody(w, 400, fmt.Sprintf(`{"error":"invalid_request","error_description":%q}`, echo))
	})
	e := newTestEndpoint(t, "mwi", idp.tokenURL())
	_, err := e.RequestToken(context.Background(), mwiRequest(t))
	if err == nil {
		t.Fatal("no error")
	}
	noSecrets(t, err)
	basic := base64.StdEncoding.EncodeToString([]byte(testClientID + ":" + testClientSecret))
	if strings.Contains(err.Error(), basic) {
		t.Errorf("error %q contains the Basic credentials", err)
	}
	if !strings.Contains(err.Error(), "[redacted]") || !strings.Contains(err.Error(), "grant_type=password") {
		t.Errorf("error %q: want the echo, redacted", err)
	}
}

func TestRequestTokenRetries(t *testing.T) {
	fast := RetryPolicy{Attempts: 3, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
	unavailable := `{"error":"temporarily_unavailable"}`
	tests := []struct {
		name       string
		policy     RetryPolicy
		handle     func(w http.ResponseWriter, r *http.Request, n int)
		wantReqs   int
		wantErr    bool
		wantStatus int // of the error
	}{
		{"503 then 200", fast, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				writeJSONBody(w, 503, unavailable)
				return
			}
			answerOK(w, r, n)
		}, 2, false, 0},
		{"500, 502 then 200", fast, func(w http.ResponseWriter, r *http.Request, n int) {
			if n < 3 {
				writeJSONBody(w, 500+2*(n-1), "oops")
				return
			}
			answerOK(w, r, n)
		}, 3, false, 0},
		{"always 503: Attempts bound", fast, answerStatus(503, unavailable), 3, true, 503},
		{"always 503, Attempts 5", RetryPolicy{Attempts: 5, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond},
			answerStatus(503, unavailable), 5, true, 503},
		{"always 503, Attempts 1", RetryPolicy{Attempts: 1}, answerStatus(503, unavailable), 1, true, 503},
		{"400 is not retried", fast, answerStatus(400, `{"error":"invalid_request"}`), 1, true, 400},
		{"401 is not retried", fast, answerStatus(401, `{"error":"invalid_client"}`), 1, true, 401},
		{"invalid token response is not retried", fast, answerStatus(200, `{"token_type":"Bearer"}`), 1, true, 200},
		{"429 then 200, short Retry-After cap", RetryPolicy{Attempts: 2, MaxDelay: 10 * time.Millisecond},
			func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 1 {
					w.Header().Set("Retry-After", "30")
					writeJSONBody(w, 429, `{"error":"slow_down"}`)
					return
				}
				answerOK(w, r, n)
			}, 2, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idp := newRecordingIdP(t, tc.handle)
			e := newTestEndpoint(t, "microtek", idp.tokenURL())
			e.Retry = tc.policy
			var attempts []int
			var mu sync.Mutex
			e.Observe = func(x Exchange) {
				mu.Lock()
				defer mu.Unlock()
				attempts = append(attempts, x.Attempt)
				if x.Grant != GrantClientCredentials {
					t.Errorf("Exchange.Grant = %q", x.Grant)
				}
			}
			tok, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials, Scopes: []string{"public-api"}})
			if got := len(idp.requests()); got != tc.wantReqs {
				t.Errorf("%d requests, want %d", got, tc.wantReqs)
			}
			mu.Lock()
			if want := seq(tc.wantReqs); !slices.Equal(attempts, want) {
				t.Errorf("observed attempts %v, want %v", attempts, want)
			}
			mu.Unlock()
			noSecrets(t, err)
			if !tc.wantErr {
				if err != nil || tok.AccessToken != "AT-1" {
					t.Fatalf("RequestToken = %+v, %v", tok, err)
				}
				return
			}
			var ie *IdPError
			if !errors.As(err, &ie) || ie.Status != tc.wantStatus {
				t.Fatalf("RequestToken error %v, want an IdPError with status %d", err, tc.wantStatus)
			}
		})
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i + 1
	}
	return s
}

func TestRequestTokenHonoursRetryAfter(t *testing.T) {
	idp := newRecordingIdP(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			writeJSONBody(w, 429, `{"error":"temporarily_unavailable"}`)
			return
		}
		answerOK(w, r, n)
	})
	e := newTestEndpoint(t, "screening-eagle", idp.tokenURL())
	// Without Retry-After the backoff would be about a millisecond.
	e.Retry = RetryPolicy{Attempts: 2, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Second}
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err != nil {
		t.Fatalf("RequestToken: %v", err)
	}
	reqs := idp.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if gap := reqs[1].Time.Sub(reqs[0].Time); gap < 950*time.Millisecond {
		t.Errorf("second request came %v after the first, want Retry-After's 1s", gap)
	}
}

// MaxElapsed bounds tries and waits together: a Retry-After beyond it ends
// the retries with the IdP's last answer.
func TestRequestTokenMaxElapsed(t *testing.T) {
	idp := newRecordingIdP(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Retry-After", "2")
		writeJSONBody(w, 503, `{"error":"temporarily_unavailable"}`)
	})
	e := newTestEndpoint(t, "oauth2", idp.tokenURL())
	e.Retry = RetryPolicy{Attempts: 10, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Second, MaxElapsed: time.Second}
	_, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials})
	noSecrets(t, err)
	var ie *IdPError
	if !errors.As(err, &ie) || ie.Status != 503 || ie.Code != "temporarily_unavailable" {
		t.Errorf("error %v, want the IdP's 503", err)
	}
	if n := len(idp.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestRequestTokenNetworkErrorRetried(t *testing.T) {
	idp := newRecordingIdP(t, answerOK)
	tokenURL := idp.tokenURL()
	idp.Close() // nothing listens there any more
	for _, attempts := range []int{1, 3} {
		e := newTestEndpoint(t, "mwi", tokenURL)
		e.Retry = RetryPolicy{Attempts: attempts, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}
		var statuses []int
		e.Observe = func(x Exchange) { statuses = append(statuses, x.Status) }
		_, err := e.RequestToken(context.Background(), mwiRequest(t))
		var ie *IdPError
		if !errors.As(err, &ie) {
			t.Fatalf("error %v is not an IdPError", err)
		}
		if !ie.Temporary || ie.Status != 0 {
			t.Errorf("Temporary %v Status %d, want a temporary failure without status", ie.Temporary, ie.Status)
		}
		if !strings.Contains(err.Error(), "could not be reached") || !strings.Contains(err.Error(), `"cfg-mwi"`) {
			t.Errorf("error %q", err)
		}
		if !slices.Equal(statuses, make([]int, attempts)) {
			t.Errorf("Attempts %d: observed statuses %v, want %d tries without response", attempts, statuses, attempts)
		}
		noSecrets(t, err)
	}
}

func TestRequestTokenRedirectNotFollowed(t *testing.T) {
	target := newRecordingIdP(t, answerOK)
	idp := newRecordingIdP(t, func(w http.ResponseWriter, r *http.Request, n int) {
		http.Redirect(w, r, target.tokenURL(), http.StatusFound)
	})
	for _, preset := range []string{"mwi", "microtek"} {
		e := newTestEndpoint(t, preset, idp.tokenURL())
		e.Retry = RetryPolicy{Attempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}
		req := TokenRequest{Grant: GrantClientCredentials}
		if preset == "mwi" {
			req = mwiRequest(t)
		}
		tok, err := e.RequestToken(context.Background(), req)
		if err == nil {
			t.Fatalf("%s: RequestToken = %+v, want an error", preset, tok)
		}
		if !strings.Contains(err.Error(), "redirect") || !strings.Contains(err.Error(), "302") {
			t.Errorf("%s: error %q does not say it was a redirect", preset, err)
		}
		noSecrets(t, err)
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("the redirect target received %d requests", n)
	}
	if n := len(idp.requests()); n != 2 {
		t.Errorf("the token endpoint received %d requests, want 2 (one per preset, no retry)", n)
	}
}

func TestRequestTokenResponseSize(t *testing.T) {
	// A valid token response padded to exactly n bytes.
	padded := func(n int) string {
		head := `{"access_token":"AT-1","token_type":"Bearer","expires_in":3600,"pad":"`
		return head + strings.Repeat("x", n-len(head)-2) + `"}`
	}
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr bool
	}{
		{"exactly MaxResponseBytes", 200, padded(MaxResponseBytes), false},
		{"one byte more", 200, padded(MaxResponseBytes + 1), true},
		{"10 MiB", 200, padded(10 << 20), true},
		{"huge error body", 400, `{"error":"x","error_description":"` + strings.Repeat("y", MaxResponseBytes) + `"}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idp := newRecordingIdP(t, answerStatus(tc.status, tc.body))
			e := newTestEndpoint(t, "oauth2", idp.tokenURL())
			tok, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials})
			if !tc.wantErr {
				if err != nil || tok.AccessToken != "AT-1" {
					t.Fatalf("RequestToken = %v, %v", tok, err)
				}
				return
			}
			if err == nil {
				t.Fatal("a response larger than MaxResponseBytes was accepted")
			}
			noSecrets(t, err)
			if !strings.Contains(err.Error(), "larger than") {
				t.Errorf("error %q does not say the response was too large", err)
			}
			if len(err.Error()) > 500 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
		})
	}
}

func TestRequestTokenTimeout(t *testing.T) {
	idp := newRecordingIdP(t, func(w http.ResponseWriter, r *http.Request, n int) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		answerOK(w, r, n)
	})
	hc, err := NewHTTPClient(200*time.Millisecond, "")
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEndpoint(t, "mwi", idp.tokenURL())
	e.HTTP = hc
	e.Retry = RetryPolicy{Attempts: 2, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}
	started := time.Now()
	_, err = e.RequestToken(context.Background(), mwiRequest(t))
	elapsed := time.Since(started)
	if err == nil {
		t.Fatal("no error")
	}
	if !strings.Contains(err.Error(), "timed out") {
		t.Errorf("error %q does not say it timed out", err)
	}
	var ie *IdPError
	if !errors.As(err, &ie) || !ie.Temporary {
		t.Errorf("error %v: want a temporary IdPError", err)
	}
	if n := len(idp.requests()); n != 2 {
		t.Errorf("%d requests, want 2 (a timeout is retried)", n)
	}
	if elapsed > 3*time.Second {
		t.Errorf("took %v, the 200ms request_timeout was not honoured", elapsed)
	}
	noSecrets(t, err)
}

// The caller's context ends the retries.
func TestRequestTokenCallerCancel(t *testing.T) {
	idp := newRecordingIdP(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Retry-After", "3")
		writeJSONBody(w, 503, `{"error":"temporarily_unavailable"}`)
	})
	e := newTestEndpoint(t, "oauth2", idp.tokenURL())
	e.Retry = RetryPolicy{Attempts: 5, MaxDelay: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.Observe = func(Exchange) { cancel() } // gives up during the first wait
	started := time.Now()
	_, err := e.RequestToken(ctx, TokenRequest{Grant: GrantClientCredentials})
	if d := time.Since(started); d > 2*time.Second {
		t.Errorf("returned after %v, not when the caller gave up", d)
	}
	noSecrets(t, err)
	var ie *IdPError
	if !errors.As(err, &ie) || ie.Status != 503 {
		t.Errorf("error %v, want the IdP's last answer", err)
	}
	if n := len(idp.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestRequestTokenObtainedAt(t *testing.T) {
	idp := newRecordingIdP(t, answerOK)
	e := newTestEndpoint(t, "microtek", idp.tokenURL())
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	e.Now = func() time.Time { return t0 }
	tok, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials})
	if err != nil {
		t.Fatal(err)
	}
	if !tok.ObtainedAt.Equal(t0) || !tok.Expiry.Equal(t0.Add(time.Hour)) {
		t.Errorf("ObtainedAt %v Expiry %v, want %v and an hour later", tok.ObtainedAt, tok.Expiry, t0)
	}
}

func TestRequestTokenDefaultTTLAndTypes(t *testing.T) {
	idp := newRecordingIdP(t, answerStatus(200, `{"access_token":"AT-1","token_type":"N_A"}`))
	e := newTestEndpoint(t, "oauth2", idp.tokenURL())
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err == nil {
		t.Fatal("accepted N_A without expires_in")
	}
	e.DefaultTokenTTL = 10 * time.Minute
	e.AllowedTokenTypes = []string{"N_A"}
	tok, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials})
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "N_A" || tok.Expiry.Sub(tok.ObtainedAt) != 10*time.Minute {
		t.Errorf("got %+v", tok)
	}
}

// A token exchange for a token that is not an access token (an ID token, a
// SAML assertion) answers token_type N_A (RFC 8693 2.2.1): accepted for the
// exchange grant without the config listing it, and only there.
func TestTokenExchangeAcceptsNA(t *testing.T) {
	idp := newRecordingIdP(t, answerStatus(200, `{"access_token":"ID-1","token_type":"N_A","expires_in":600,`+
		`"issued_token_type":"urn:ietf:params:oauth:token-type:id_token"}`))
	e := newTestEndpoint(t, "oauth2", idp.tokenURL())
	tok, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantTokenExchange})
	if err != nil {
		t.Fatalf("token exchange answered N_A: %v", err)
	}
	if tok.TokenType != "N_A" || tok.IssuedTokenType != "urn:ietf:params:oauth:token-type:id_token" {
		t.Errorf("got %+v", tok)
	}
	e.AllowedTokenTypes = []string{"DPoP"}
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantTokenExchange}); err != nil {
		t.Errorf("with allowed_token_types DPoP: %v", err)
	}
	if e.AllowedTokenTypes[0] != "DPoP" || len(e.AllowedTokenTypes) != 1 {
		t.Errorf("the config's allowed types changed: %v", e.AllowedTokenTypes)
	}
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Errorf("client_credentials answered N_A: err=%v, want it refused", err)
	}
}
