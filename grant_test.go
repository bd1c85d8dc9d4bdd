package idptokens

// The token request as seen through creds/<role>: outages,
// single flight under retries, hostile token endpoints, private CAs and
// IdPs that echo what they were sent.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
)

// lockedBuffer is an io.Writer safe for the concurrent writes of a logger.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tokenKeys lists every stored key under tokens/, at any depth.
func (e *testEnv) tokenKeys() []string {
	e.t.Helper()
	keys, err := logical.CollectKeysWithPrefix(context.Background(), e.storage, backend.TokenPrefix)
	if err != nil {
		e.t.Fatal(err)
	}
	return keys
}

// quietTLSServer is httptest.NewTLSServer without handshake-error noise on
// stderr (the refused handshakes are the point of some tests).
func quietTLSServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// hostileSecret is the client secret sent to hostile token endpoints.
const hostileSecret = "h0stile-Secret+/="

// Hostile or broken token endpoints: each gets a clear error through creds,
// no secret in it, and nothing is stored. A redirect is not followed.
func TestHostileTokenResponses(t *testing.T) {
	var trapped atomic.Int64
	trap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trapped.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"stolen","token_type":"Bearer","expires_in":3600}`)
	}))
	defer trap.Close()

	json200 := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, body)
		}
	}
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"HTML page with 200", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<!doctype html><html><body><h1>Sign in</h1></body></html>")
		}, "the token response is not JSON"},
		{"body over 1 MiB", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":"%s","token_type":"Bearer","expires_in":3600}`, strings.Repeat("a", backend.MaxResponseBytes+10))
		}, fmt.Sprintf("larger than %d bytes", backend.MaxResponseBytes)},
		{"endless body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			chunk := []byte(strings.Repeat(" ", 64<<10))
			for i := 0; i < 64; i++ { // 4 MiB, more than the cap
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, "larger than"},
		{"no access_token", json200(`{"token_type":"Bearer","expires_in":3600}`), "has no access_token"},
		{"token_type mac", json200(`{"access_token":"x","token_type":"mac","expires_in":3600}`), `token_type "mac" is not allowed`},
		{"expires_in -1", json200(`{"access_token":"x","token_type":"Bearer","expires_in":-1}`), "out of range"},
		{"expires_in 10^12", json200(`{"access_token":"x","token_type":"Bearer","expires_in":1000000000000}`), "out of range"},
		{"302 to another server", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, trap.URL+"/token", http.StatusFound)
		}, "redirects are not followed"},
		{"307 to another server", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, trap.URL+"/token", http.StatusTemporaryRedirect)
		}, "redirects are not followed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				c.handler(w, r)
			}))
			defer srv.Close()
			e := newTestEnv(t)
			e.ok(logical.UpdateOperation, "config/hostile", map[string]any{
				"token_url": srv.URL + "/token", "client_id": "c", "client_secret": hostileSecret,
			})
			e.ok(logical.UpdateOperation, "roles/r", map[string]any{"config": "hostile"})
			msg := e.fails(logical.ReadOperation, "creds/r", nil, c.want)
			if !strings.Contains(msg, `config "hostile"`) {
				t.Errorf("error %q does not name the config", msg)
			}
			if strings.Contains(msg, hostileSecret) || strings.Contains(msg, url.QueryEscape(hostileSecret)) {
				t.Errorf("error %q holds the client secret", msg)
			}
			if len(msg) > 600 {
				t.Errorf("error is %d bytes long; the IdP's body must not be quoted whole", len(msg))
			}
			if keys := e.tokenKeys(); len(keys) != 0 {
				t.Errorf("storage holds %v, want no token", keys)
			}
			if n := hits.Load(); n != 1 {
				t.Errorf("the hostile endpoint was asked %d times, want once (a 200 or 3xx is not retried)", n)
			}
		})
	}
	if n := trapped.Load(); n != 0 {
		t.Errorf("the redirect target was hit %d times; redirects must not be followed", n)
	}
}

// An IdP behind a private CA works when ca_cert holds its certificate, and
// fails with an x509 error (and no secret) without it.
func TestCACertPrivateIdP(t *testing.T) {
	idp := fakeidp.New(fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "tls-client", ClientSecret: "tls-secret-42"})
	srv := quietTLSServer(t, idp)
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	tokenURL := srv.URL + idp.TokenPath()
	if !strings.HasPrefix(tokenURL, "https://127.0.0.1:") {
		t.Fatalf("unexpected TLS server URL %s", tokenURL)
	}

	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config/trusted", map[string]any{
		"token_url": tokenURL, "client_id": "tls-client", "client_secret": "tls-secret-42", "ca_cert": caPEM,
	})
	e.ok(logical.UpdateOperation, "config/untrusted", map[string]any{
		"token_url": tokenURL, "client_id": "tls-client", "client_secret": "tls-secret-42",
	})
	e.ok(logical.UpdateOperation, "roles/trusted", map[string]any{"config": "trusted"})
	e.ok(logical.UpdateOperation, "roles/untrusted", map[string]any{"config": "untrusted"})

	tok := e.creds("trusted").Data["access_token"].(string)
	if !idp.Valid(tok) {
		t.Fatal("the token obtained over TLS is not valid at the IdP")
	}
	requests := idp.TokenRequests()
	msg := e.fails(logical.ReadOperation, "creds/untrusted", nil, "x509")
	if !strings.Contains(msg, `config "untrusted"`) || strings.Contains(msg, "tls-secret-42") {
		t.Errorf("error %q: want the config named and no secret", msg)
	}
	if n := idp.TokenRequests(); n != requests {
		t.Errorf("the IdP received %d requests from the untrusted config; the handshake must fail before any", n-requests)
	}
	if keys := e.tokenKeys(); len(keys) != 1 {
		t.Errorf("storage holds %v, want only the trusted role's token", keys)
	}

	// A CA that did not sign the server's certificate is refused as well
	// (httptest servers all share one certificate, so make another CA).
	// A new CA re-targets where the secret goes, as a new URL does: the
	// secret must come with it.
	other := testkeys.UnrelatedCA(t)
	e.fails(logical.UpdateOperation, "config/untrusted", map[string]any{"ca_cert": other}, "client_secret")
	e.ok(logical.UpdateOperation, "config/untrusted", map[string]any{"ca_cert": other, "client_secret": "tls-secret-42"})
	e.fails(logical.ReadOperation, "creds/untrusted", nil, "x509")
}

// Secrets the echo tests send, with characters that URL and Basic encoding
// change, so every encoded form is exercised.
const (
	echoClientSecret = "Echo+Client/Secret:9=%"
	echoPassword     = "P@ss w0rd&x=1"
	echoSecurityKey  = "SecKey-Echo-7731"
	echoAccessCode   = "AC-77"
	echoUser         = "echo.operator"
)

// An IdP that quotes what it received in its error description must not
// make a secret appear in a creds error or in the plugin's log at Trace.
func TestEchoingIdPLeaksNothing(t *testing.T) {
	var mode atomic.Value
	mode.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(raw))
		auth := r.Header.Get("Authorization")
		basic, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth, "Basic "))
		var desc string
		code := "invalid_grant"
		switch mode.Load().(string) {
		case "raw body":
			desc = string(raw)
		case "decoded body":
			desc = fmt.Sprint(form)
		case "password":
			desc = "wrong password " + form.Get("password")
		case "username":
			desc = "unknown user " + form.Get("username")
		case "authorization header":
			desc = "bad header " + auth
		case "decoded basic":
			desc = "bad client " + string(basic)
		case "secret in error code":
			code = form.Get("password")
			desc = "x"
		case "everything":
			desc = strings.Join([]string{form.Get("password"), form.Get("username"), string(basic), auth}, " | ")
		}
		status := http.StatusBadRequest
		if mode.Load().(string) == "5xx echo" {
			status = http.StatusInternalServerError
			desc = string(raw) + " " + auth
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}))
	defer srv.Close()

	logs := &lockedBuffer{}
	e := newTestEnv(t, withLogs(logs))
	e.ok(logical.UpdateOperation, "config/echo", map[string]any{
		"provider": "mwi", "token_url": srv.URL + "/connect/token", "client_id": "echo-client", "client_secret": echoClientSecret,
		"access_code": echoAccessCode, "username": echoUser, "security_key": echoSecurityKey, "password": echoPassword,
	})
	e.ok(logical.UpdateOperation, "roles/echo", map[string]any{"config": "echo", "scopes": "test_api"})

	secrets := secretForms(echoClientSecret, echoPassword, echoSecurityKey,
		base64.StdEncoding.EncodeToString([]byte("echo-client:"+echoClientSecret)))
	for _, m := range []string{"raw body", "decoded body", "password", "username", "authorization header",
		"decoded basic", "secret in error code", "everything", "5xx echo"} {
		mode.Store(m)
		resp, err := e.do(logical.ReadOperation, "creds/echo", nil)
		if err != nil || resp == nil || !resp.IsError() {
			t.Fatalf("%s: want an error response, got %v %v", m, resp, err)
		}
		msg := respErr(resp)
		if !strings.Contains(msg, `config "echo"`) {
			t.Errorf("%s: error %q does not name the config", m, msg)
		}
		for _, s := range secrets {
			if strings.Contains(msg, s) {
				t.Errorf("%s: error %q holds the secret form %q", m, msg, s)
			}
		}
	}

	// A working MWI IdP on the same logged backend: its tokens must not be
	// logged either.
	idp, url := startIdP(t, fakeidp.Options{Style: fakeidp.StyleMWI, ClientID: "echo-client", ClientSecret: echoClientSecret,
		Username: `lbso\` + echoAccessCode + `\` + echoUser + `\` + echoSecurityKey, Password: echoPassword, RefreshTokens: true})
	e.ok(logical.UpdateOperation, "config/echo", map[string]any{
		"token_url": url, "client_secret": echoClientSecret, "password": echoPassword, "security_key": echoSecurityKey,
	})
	access := e.creds("echo").Data["access_token"].(string)
	if !idp.Valid(access) {
		t.Fatal("the token from the working IdP is not valid")
	}
	refresh := storedRefreshToken(t, e)

	out := logs.String()
	if testing.Verbose() {
		t.Logf("the plugin's log:\n%s", out)
	}
	if !strings.Contains(out, "token request failed") {
		t.Fatalf("the backend logged no failure; the log check would prove nothing:\n%s", out)
	}
	for _, s := range append(secrets, access, refresh) {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("the plugin's log holds %q:\n%s", s, out)
		}
	}
}

// secretForms is each secret as sent and in its URL-encoded forms.
func secretForms(secrets ...string) []string {
	var out []string
	for _, s := range secrets {
		out = append(out, s, url.QueryEscape(s), url.PathEscape(s))
	}
	return out
}

// storedRefreshToken returns the refresh token of the only stored token.
func storedRefreshToken(t *testing.T, e *testEnv) string {
	t.Helper()
	keys := e.tokenKeys()
	if len(keys) != 1 {
		t.Fatalf("want one stored token, have %v", keys)
	}
	entry, err := e.storage.Get(context.Background(), keys[0])
	if err != nil || entry == nil {
		t.Fatalf("reading %s: %v", keys[0], err)
	}
	var st backend.StoredToken
	if err := json.Unmarshal(entry.Value, &st); err != nil {
		t.Fatal(err)
	}
	if st.RefreshToken == "" {
		t.Fatal("the stored token has no refresh token")
	}
	return st.RefreshToken
}

// An IdP that speaks at most TLS 1.1 is refused, through a config as a user
// writes it (with ca_cert, so that only the protocol version is wrong, and
// with a TLS client certificate too): the creds error names the config and
// the protocol version, and the IdP receives no request.
func TestTLS11IdPRefused(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"x","token_type":"Bearer","expires_in":3600}`)
	}))
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	cert, key := testkeys.ClientCert(t)

	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config/old-tls", map[string]any{
		"token_url": srv.URL + "/token", "client_id": "c", "client_secret": "tls11-secret", "ca_cert": caPEM,
	})
	e.ok(logical.UpdateOperation, "config/old-mtls", map[string]any{
		"token_url": srv.URL + "/token", "client_id": "c", "client_auth": "tls_client_auth",
		"tls_client_cert": cert, "tls_client_key": key, "ca_cert": caPEM,
	})
	for _, name := range []string{"old-tls", "old-mtls"} {
		e.ok(logical.UpdateOperation, "roles/"+name, map[string]any{"config": name})
		msg := e.fails(logical.ReadOperation, "creds/"+name, nil, `config "`+name+`"`)
		if !strings.Contains(msg, "protocol version") || strings.Contains(msg, "tls11-secret") {
			t.Errorf("error %q: want the protocol version refused and no secret", msg)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the TLS 1.1 IdP received %d requests; the handshake must fail first", n)
	}
	if keys := e.tokenKeys(); len(keys) != 0 {
		t.Errorf("storage holds %v, want no token", keys)
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

func TestScopesNotGranted(t *testing.T) {
	for _, c := range []struct {
		granted string
		asked   []string
		want    []string
	}{
		{"", []string{"a", "b"}, nil},       // no scope in the answer: what was asked
		{"a b", []string{"a", "b"}, nil},    // all granted
		{"b  a c", []string{"a", "b"}, nil}, // more granted, any order
		{"a", []string{"a", "b"}, []string{"b"}},
		{"x", []string{"a", "b"}, []string{"a", "b"}},
	} {
		if got := scopesNotGranted(c.granted, c.asked); !slices.Equal(got, c.want) {
			t.Errorf("scopesNotGranted(%q, %v) = %v, want %v", c.granted, c.asked, got, c.want)
		}
	}
}
