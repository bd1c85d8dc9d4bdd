//go:build integration

package integration

import (
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
)

// TestAuditAuthCodeAndKeysHoldNoSecrets is TestAuditAndLogsHoldNoSecrets for
// the flows it does not run: an authorization-code login through the
// browser's unauthenticated GET of the callback and through `vault write
// idp/callback`, private_key_jwt (config write with a PEM key, a rotation to
// a key the IdP does not know yet, so the previous key serves), and
// tls_client_auth (a PEM client key). Neither audit log nor Vault's trace
// log may hold, raw, URL-encoded, JSON-escaped or as a line of its PEM body:
// the client secret, the logins' codes, states and PKCE verifiers, the
// private keys, the TLS client key, the client assertions sent, or any token
// issued.
func TestAuditAuthCodeAndKeysHoldNoSecrets(t *testing.T) {
	t.Parallel()
	const myidSecret = "myid+audit/secret:%41é"
	v := StartDevVault(t, "-log-level=trace")
	auditA, auditB := enableAuditDevices(t, v)
	dir := t.TempDir()
	secrets := map[string]string{"MyID client_secret": myidSecret}

	// Authorization code: the browser's GET of the callback, then the CLI's write.
	idp := startRecordingIdP(t, fakeidp.Options{Style: fakeidp.StyleMyID, ClientID: "myid-audit", ClientSecret: myidSecret,
		RedirectURIs: []string{v.callbackURL()}})
	v.Write("idp/config/myid", "provider=myid", "token_url="+idp.TokenURL(), "auth_url="+idp.URL+"/connect/authorize",
		"client_id=myid-audit", "client_secret="+myidSecret, "redirect_uris="+v.callbackURL())
	v.Write("idp/roles/myid", "config=myid")
	loginURL, state := v.authURL("myid")
	p := newBrowser(t).get(loginURL)
	atCallback(t, v, p)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Login complete") {
		t.Fatalf("callback answered %d:\n%s", p.Status, p.Body)
	}
	secrets["browser login's state"] = state
	secrets["browser login's code"] = p.URL.Query().Get("code")
	secrets["browser login's PKCE verifier"] = idp.LastRequest().Form.Get("code_verifier")

	loginURL, state = v.authURL("myid")
	code := loginCode(t, loginURL)
	v.Run("write", "idp/callback", "code="+code, "state="+state)
	secrets["CLI login's state"] = state
	secrets["CLI login's code"] = code
	secrets["CLI login's PKCE verifier"] = idp.LastRequest().Form.Get("code_verifier")
	v.ReadCreds("myid")

	// private_key_jwt, and a rotation to a key the IdP does not know yet.
	keyPEM, key := testkeys.ECPKCS8(t)
	newKeyPEM, _ := testkeys.ECPKCS8(t)
	keyFile, newKeyFile := filepath.Join(dir, "key.pem"), filepath.Join(dir, "new-key.pem")
	writeFile(t, keyFile, keyPEM)
	writeFile(t, newKeyFile, newKeyPEM)
	jwtIdP := startKeyIdP(t, &key.PublicKey)
	v.Write("idp/config/jwt", "token_url="+jwtIdP.URL, "client_id=jwt-audit", "client_auth=private_key_jwt",
		"private_key=@"+keyFile, "private_key_id=audit-key-1")
	v.Write("idp/roles/jwt", "config=jwt")
	v.ReadCreds("jwt")
	v.Write("idp/config/jwt/rotate", "private_key=@"+newKeyFile, "private_key_id=audit-key-2")
	v.Run("write", "-f", "idp/creds/jwt/drop")
	v.ReadCreds("jwt") // the new key is refused; the previous one serves
	v.Run("read", "idp/config/jwt")
	secrets["private_key"], secrets["rotated private_key"] = keyPEM, newKeyPEM

	// tls_client_auth.
	certPEM, tlsKeyPEM := testkeys.ClientCert(t)
	tlsIdP := startKeyIdP(t, nil)
	certFile, tlsKeyFile, caFile := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"), filepath.Join(dir, "ca.pem")
	writeFile(t, certFile, certPEM)
	writeFile(t, tlsKeyFile, tlsKeyPEM)
	writeFile(t, caFile, tlsIdP.CAPEM)
	v.Write("idp/config/mtls", "token_url="+tlsIdP.URL, "client_id=mtls-audit", "client_auth=tls_client_auth",
		"tls_client_cert=@"+certFile, "tls_client_key=@"+tlsKeyFile, "ca_cert=@"+caFile)
	v.Write("idp/roles/mtls", "config=mtls")
	v.ReadCreds("mtls")
	v.Run("read", "idp/config/mtls")

	for i, s := range append(append(idp.Issued(), jwtIdP.Seen()...), tlsIdP.Seen()...) {
		secrets["token or assertion "+string(rune('A'+i))] = s
	}
	for what, s := range secrets {
		if s == "" {
			t.Fatalf("the %s is empty: the flow did not run as expected", what)
		}
	}

	time.Sleep(500 * time.Millisecond) // let the plugin's last log lines reach Vault's log
	// Vault's audit entries record each request's URI verbatim
	// (request_uri), so the browser's GET of the callback leaves its code and
	// state there in clear: single-use and spent by then, and the code is
	// worth nothing without the PKCE verifier and the client secret, which
	// are searched for everywhere. The request's data (code, state) is HMAC'd
	// like any other. docs/idps.md says so.
	browserLogin := []string{secrets["browser login's code"], secrets["browser login's state"]}
	if text := readFile(t, auditA); !strings.Contains(text, `"request_uri":"/v1/idp/callback?`) {
		t.Error("the audit log has no request_uri of the callback's GET: the scrub below would hide nothing")
	}
	scrub := func(text string) string {
		return callbackURIRE.ReplaceAllStringFunc(text, func(uri string) string {
			for _, s := range browserLogin {
				uri = strings.ReplaceAll(uri, s, "[browser login]")
			}
			return uri
		})
	}
	assertNoSecrets(t, v, auditA, auditB, secrets, pemForms, scrub)

	// The checks above prove something only if the logs saw the flows.
	for _, path := range []string{auditA, auditB} {
		text := readFile(t, path)
		for _, want := range []string{`"path":"idp/callback"`, `"path":"idp/auth-url/myid"`, `"path":"idp/config/jwt/rotate"`,
			`"code":"hmac-sha256:`, `"state":"hmac-sha256:`, `"private_key":"hmac-sha256:`, `"tls_client_key":"hmac-sha256:`,
			`"access_token":"hmac-sha256:`} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %s: the flows did not reach it as expected", filepath.Base(path), want)
			}
		}
	}
	vaultLog := readFile(t, v.log)
	for _, want := range []string{"[TRACE]", "login completed", "accepted the previous one"} {
		if !strings.Contains(vaultLog, want) {
			t.Errorf("Vault's log lacks %q: it does not hold the plugin's output as expected", want)
		}
	}
}

// callbackURIRE matches the request_uri of a GET of the callback in an audit entry.
var callbackURIRE = regexp.MustCompile(`"request_uri":"/v1/idp/callback\?[^"]*"`)

// pemForms is encodedForms of s and, for a PEM block, of each line of its
// base64 body, which a log could hold without the rest.
func pemForms(s string) []string {
	forms := encodedForms(s)
	if !strings.HasPrefix(s, "-----BEGIN") {
		return forms
	}
	for _, line := range strings.Split(s, "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			forms = append(forms, encodedForms(line)...)
		}
	}
	return forms
}
