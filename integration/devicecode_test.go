//go:build integration

package integration

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDeviceCodeOIDCProvider: RFC 8628 through a real Vault against
// oidc-provider's own device flow. The device authorization endpoint is
// discovered from the issuer; the test, as the person, opens the
// verification URI, enters the user code, confirms, and logs in on the
// provider's forms; Vault's poller meanwhile gets the token, which creds
// then serves and later refreshes.
func TestDeviceCodeOIDCProvider(t *testing.T) {
	t.Parallel()
	const ttl = 15 * time.Second
	op := StartOIDCProvider(t, ttl)
	v := StartDevVault(t, "-log-level=debug")
	v.Write("idp/config/op-dev", "issuer="+op.Issuer, "client_id=device-client", "client_secret="+oidcClientSecret)
	v.Write("idp/roles/tv", "config=op-dev", "grant_type=device_code", "scopes=openid,offline_access,api:read")

	var dc Secret
	v.JSON(&dc, "write", "-f", "idp/device-code/tv")
	userCode, verify := dc.String("user_code"), dc.String("verification_uri")
	if userCode == "" || verify != op.Issuer+"/device" || dc.String("verification_uri_complete") == "" ||
		dc.String("expires_at") == "" || dc.Data["interval"] == nil {
		t.Fatalf("device-code answered %v", dc.Data)
	}
	if _, has := dc.Data["device_code"]; has {
		t.Fatal("device-code shows the device code")
	}
	r := v.CLI("read", "idp/creds/tv")
	if r.Err == nil || !strings.Contains(r.Stderr, "waits for a device login") || !strings.Contains(r.Stderr, userCode) {
		t.Fatalf("creds while pending: err=%v stderr=%s", r.Err, r.Stderr)
	}

	// The person comes to it after Vault has polled at least once, so that
	// the poller sees authorization_pending first.
	if !eventually(60*time.Second, 200*time.Millisecond, func() bool {
		b, _ := os.ReadFile(v.log)
		return strings.Contains(string(b), "device login pending")
	}) {
		t.Fatal("Vault never polled the token endpoint")
	}
	// The person: enter the code, confirm, log in, consent.
	br := newBrowser(t)
	p := br.get(verify)
	p = br.submitForm(p, map[string]string{"user_code": userCode})
	for step := 0; step < 6 && !strings.Contains(p.Body, "Sign-in Success"); step++ {
		p = br.submitForm(p, map[string]string{"login": "alice", "password": "any"})
	}
	if !strings.Contains(p.Body, "Sign-in Success") {
		t.Fatalf("the device login did not complete at the provider (%s, HTTP %d):\n%s", p.URL.Redacted(), p.Status, p.Body)
	}
	loggedIn := time.Now()

	var s Secret
	if !eventually(60*time.Second, 250*time.Millisecond, func() bool {
		r := v.CLIAs(v.Token, "", "read", "-format=json", "idp/creds/tv")
		return r.Err == nil && jsonInto(r.Stdout, &s) && s.String("access_token") != ""
	}) {
		t.Fatalf("no token within 60 s of the login:\n%s", v.CLI("read", "idp/creds/tv").Stderr)
	}
	t.Logf("creds served the token %v after the person finished logging in (interval %v s)",
		time.Since(loggedIn).Round(100*time.Millisecond), dc.Data["interval"])
	if logText, err := os.ReadFile(v.log); err == nil {
		for _, line := range strings.Split(string(logText), "\n") {
			if strings.Contains(line, "device login") {
				t.Logf("vault log: %s", strings.TrimSpace(line))
			}
		}
	}
	tok := s.String("access_token")
	in := op.Introspect(t, "device-client", tok)
	if in["active"] != true || in["sub"] != "alice" || in["client_id"] != "device-client" {
		t.Fatalf("introspection: %v", in)
	}
	if d := math.Abs(float64(s.LeaseDuration) - ttl.Seconds()); d > 6 {
		t.Errorf("lease_duration %d, want about the token's %v", s.LeaseDuration, ttl)
	}

	// Expired: refreshed with the refresh token the device grant issued.
	time.Sleep(time.Duration(s.LeaseDuration+2) * time.Second)
	s2 := v.ReadCreds("tv")
	if s2.String("access_token") == tok {
		t.Fatal("after expiry creds returned the old token")
	}
	if in := op.Introspect(t, "device-client", s2.String("access_token")); in["active"] != true || in["sub"] != "alice" {
		t.Fatalf("introspection of the refreshed token: %v", in)
	}
	help := v.Run("path-help", "idp/device-code/tv")
	if !strings.Contains(help, "user_code") || !strings.Contains(help, "slow_down") {
		t.Errorf("path-help of device-code/:\n%s", help)
	}
}

func jsonInto(s string, out any) bool { return json.Unmarshal([]byte(s), out) == nil }
