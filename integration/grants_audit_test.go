//go:build integration

package integration

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// TestGrantsAuditAndLogsHoldNoSecrets runs the extension grants (JWT
// bearer, token exchange of a role's and of a caller's token, device login)
// with a file audit device and Vault at -log-level=trace, then looks for
// every secret they handled — the private key, client secrets, signed
// assertions, subject tokens, the device code, and every token issued — in
// the audit log and Vault's log. None may appear in clear.
func TestGrantsAuditAndLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	const (
		jbSecret    = "JB-Client-Secret-4711"
		stsSecret   = "STS-Client-Secret-0815"
		tvSecret    = "TV-Client-Secret-2342"
		callerToken = "caller-subject-token-9b1f3c"
	)
	v := StartDevVault(t, "-log-level=trace")
	auditLog := filepath.Join(t.TempDir(), "audit.log")
	v.Run("audit", "enable", "file", "file_path="+auditLog)
	secrets := map[string]string{"jwt_bearer client_secret": jbSecret, "sts client_secret": stsSecret,
		"device client_secret": tvSecret, "caller's subject token": callerToken}

	// JWT bearer.
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	writeFile(t, keyFile, keyPEM)
	secrets["a line of the private key"] = strings.Split(keyPEM, "\n")[5]
	jb := fakeidp.NewJWTBearer(fakeidp.JWTBearerOptions{Key: &key.PublicKey, Issuer: "jb", ClientID: "jb", ClientSecret: jbSecret})
	jbSrv := httptest.NewServer(jb)
	t.Cleanup(jbSrv.Close)
	v.Write("idp/config/jb", "token_url="+jbSrv.URL+"/token", "client_id=jb", "client_secret="+jbSecret, "private_key=@"+keyFile)
	v.Write("idp/roles/jb", "config=jb", "grant_type=jwt_bearer")
	secrets["jwt_bearer token"] = v.ReadCreds("jb").String("access_token")
	for i, r := range jb.Requests() {
		secrets["assertion "+string(rune('A'+i))] = r.Form.Get("assertion")
	}

	// Token exchange: the jwt_bearer role's token as subject, and a caller's.
	sts := fakeidp.NewTokenExchange(fakeidp.TokenExchangeOptions{ClientID: "sts", ClientSecret: stsSecret,
		ValidSubject: func(s string) bool { return s == callerToken || jb.Valid(s) }})
	stsSrv := httptest.NewServer(sts)
	t.Cleanup(stsSrv.Close)
	v.Write("idp/config/sts", "token_url="+stsSrv.URL+"/token", "client_id=sts", "client_secret="+stsSecret)
	v.Write("idp/roles/from-jb", "config=sts", "grant_type=token_exchange", "subject_role=jb")
	v.Write("idp/roles/caller", "config=sts", "grant_type=token_exchange")
	secrets["exchanged token of a role"] = v.ReadCreds("from-jb").String("access_token")
	var x Secret
	v.JSON(&x, "write", "idp/exchange/caller", "subject_token="+callerToken)
	secrets["exchanged token of a caller"] = x.String("access_token")
	if r := v.CLI("write", "idp/exchange/caller", "subject_token=not-"+callerToken); r.Err == nil {
		t.Fatal("a bad subject token was exchanged")
	}

	// Device login.
	tv := fakeidp.NewDevice(fakeidp.DeviceOptions{ClientID: "tv", ClientSecret: tvSecret, Scope: "watch", Interval: 1})
	tvSrv := httptest.NewServer(tv)
	t.Cleanup(tvSrv.Close)
	v.Write("idp/config/tv", "token_url="+tvSrv.URL+"/token", "device_authorization_url="+tvSrv.URL+"/device",
		"client_id=tv", "client_secret="+tvSecret)
	v.Write("idp/roles/tv", "config=tv", "grant_type=device_code", "scopes=watch")
	var dc Secret
	v.JSON(&dc, "write", "-f", "idp/device-code/tv")
	tv.Approve(dc.String("user_code"))
	if !eventually(30*time.Second, 200*time.Millisecond, func() bool { return v.CLI("read", "idp/creds/tv").Err == nil }) {
		t.Fatalf("the device login did not complete: %s", v.CLI("read", "idp/creds/tv").Stderr)
	}
	for i, s := range tv.Issued() {
		secrets["device flow value "+string(rune('A'+i))] = s
	}

	time.Sleep(500 * time.Millisecond) // let the plugin's last log lines reach Vault's log
	for name, path := range map[string]string{"audit log": auditLog, "Vault's log": v.log} {
		text := readFile(t, path)
		for what, s := range secrets {
			if s == "" {
				t.Fatalf("the %s was not captured", what)
			}
			for _, form := range encodedForms(s) {
				if strings.Contains(text, form) {
					t.Errorf("the %s holds the %s in clear (as %q)", name, what, form)
				}
			}
		}
	}
	// The checks prove something only if the logs saw the flows.
	audit := readFile(t, auditLog)
	for _, want := range []string{`"path":"idp/creds/jb"`, `"path":"idp/creds/from-jb"`, `"subject_token":"hmac-sha256:`,
		`"path":"idp/device-code/tv"`, `"path":"idp/creds/tv"`, `"private_key":"hmac-sha256:`} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit log lacks %s", want)
		}
	}
	for _, want := range []string{"[TRACE]", "device login complete", "token exchanged"} {
		if !strings.Contains(readFile(t, v.log), want) {
			t.Errorf("Vault's log lacks %q", want)
		}
	}
}
