//go:build integration

package integration

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// TestAuditAndLogsHoldNoSecrets runs the main flows with two file audit
// devices (the default, and log_raw=false spelled out) and Vault at
// -log-level=trace, then looks for every secret the flows handled — client
// secrets, the operator's password and security key, and every access and
// refresh token the IdP issued — in the audit logs, Vault's server log and
// the plugin's log lines in it. None may appear in clear.
func TestAuditAndLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	const (
		clientID     = "audit-client"
		clientSecret = "Audit-Client-Secret+/9="
		accessCode   = "AC-4242"
		operator     = "audit.op"
		securityKey  = "SK-Audit-5151"
		password     = "Audit-Pass word:7%"
		wrongSecret  = "Wrong-Secret-Value-31337"
	)
	v := StartDevVault(t, "-log-level=trace")
	auditA, auditB := enableAuditDevices(t, v)

	idp := startRecordingIdP(t, fakeidp.Options{
		Style: fakeidp.StyleMWI, ClientID: clientID, ClientSecret: clientSecret,
		Username: `lbso\` + accessCode + `\` + operator + `\` + securityKey, Password: password,
		RefreshTokens: true, TokenTTL: 4 * time.Second,
	})
	operatorArgs := []string{"access_code=" + accessCode, "username=" + operator, "security_key=" + securityKey,
		"password=" + password, "scopes=test_api"}
	v.Write("idp/config/mwi", append([]string{"provider=mwi", "token_url=" + idp.TokenURL(),
		"client_id=" + clientID, "client_secret=" + clientSecret}, operatorArgs...)...)
	v.Write("idp/roles/mwi", "config=mwi")
	v.Run("read", "idp/config/mwi")

	first := v.ReadCreds("mwi").String("access_token")
	if again := v.ReadCreds("mwi").String("access_token"); again != first {
		t.Fatal("the second read did not reuse the cached token")
	}
	// The 4 s token is stale after 2 s: the next read refreshes it.
	time.Sleep(2500 * time.Millisecond)
	if v.ReadCreds("mwi").String("access_token") == first {
		t.Fatal("the read after the token went stale returned the stale token")
	}
	if idp.TokenRequestsByGrant("refresh_token") == 0 {
		t.Fatal("no refresh grant was used; the refresh token never travelled")
	}

	// An IdP error: a config with a wrong client secret.
	v.Write("idp/config/bad", append([]string{"provider=mwi", "token_url=" + idp.TokenURL(),
		"client_id=" + clientID, "client_secret=" + wrongSecret}, operatorArgs...)...)
	v.Write("idp/roles/bad", "config=bad")
	if r := v.CLI("read", "idp/creds/bad"); r.Err == nil || !strings.Contains(r.Stderr, `config "bad"`) {
		t.Fatalf("reading creds of the bad config: err=%v stderr=%s; want an error naming the config", r.Err, r.Stderr)
	}
	// An update keeps the secrets (write-only) and reads them back as *_set.
	v.Write("idp/config/mwi", "request_timeout=5")
	var cfg Secret
	v.JSON(&cfg, "read", "idp/config/mwi")
	if cfg.Data["client_secret_set"] != true || cfg.Data["client_secret"] != nil {
		t.Fatalf("config read: %v", cfg.Data)
	}

	issued := idp.Issued()
	if len(issued) < 4 { // two access and two refresh tokens at least
		t.Fatalf("the IdP issued %d tokens, want at least 4", len(issued))
	}
	basic := base64.StdEncoding.EncodeToString([]byte(clientID + ":" + clientSecret))
	secrets := map[string]string{
		"client_secret": clientSecret, "wrong client_secret": wrongSecret, "password": password,
		"security_key": securityKey, "Basic credentials": basic,
	}
	for i, tok := range issued {
		secrets["issued token "+string(rune('A'+i))] = tok
	}

	time.Sleep(500 * time.Millisecond) // let the plugin's last log lines reach Vault's log
	vaultLog := readFile(t, v.log)
	assertNoSecrets(t, v, auditA, auditB, secrets, encodedForms, nil)

	// The checks above prove something only if the logs saw the flows.
	for _, path := range []string{auditA, auditB} {
		text := readFile(t, path)
		for _, want := range []string{`"path":"idp/config/mwi"`, `"path":"idp/creds/mwi"`, `"path":"idp/creds/bad"`,
			`"client_secret":"hmac-sha256:`, `"password":"hmac-sha256:`, `"security_key":"hmac-sha256:`, `"access_token":"hmac-sha256:`} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %s: the flows did not reach it as expected", filepath.Base(path), want)
			}
		}
	}
	for _, want := range []string{"[TRACE]", pluginName, "token request failed", `config \"bad\"`} {
		if !strings.Contains(vaultLog, want) {
			t.Errorf("Vault's log lacks %q: it does not hold the plugin's trace-level output as expected", want)
		}
	}
}

// enableAuditDevices enables two file audit devices, with the default
// options and with log_raw=false spelled out, and returns their files.
func enableAuditDevices(t *testing.T, v *Vault) (string, string) {
	t.Helper()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "audit.log"), filepath.Join(dir, "audit-raw-false.log")
	v.Run("audit", "enable", "file", "file_path="+a)
	v.Run("audit", "enable", "-path=file-explicit", "file", "file_path="+b, "log_raw=false")
	return a, b
}

// assertNoSecrets fails for every form of every secret found in the audit
// logs or Vault's log (which holds the plugin's log lines).
// scrubAudit, if not nil, removes from an audit log's text what the test
// knows Vault writes there in clear, before the search.
func assertNoSecrets(t *testing.T, v *Vault, auditA, auditB string, secrets map[string]string, forms func(string) []string, scrubAudit func(string) string) {
	t.Helper()
	for name, path := range map[string]string{"audit log": auditA, "audit log (log_raw=false)": auditB, "Vault's log": v.log} {
		text := readFile(t, path)
		if scrubAudit != nil && path != v.log {
			text = scrubAudit(text)
		}
		for what, s := range secrets {
			for _, form := range forms(s) {
				if strings.Contains(text, form) {
					t.Errorf("the %s holds the %s in clear (as %q)", name, what, form)
				}
			}
		}
	}
}

// encodedForms is s as sent, URL-encoded, and as encoding/json writes it
// inside a string (the audit log is JSON).
func encodedForms(s string) []string {
	j, _ := json.Marshal(s)
	forms := []string{s, url.QueryEscape(s), url.PathEscape(s), strings.Trim(string(j), `"`)}
	return forms
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
