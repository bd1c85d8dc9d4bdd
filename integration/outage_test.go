//go:build integration

package integration

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// TestIdPDownServesCachedToken: the IdP goes away after the first read.
// Reads through the real Vault keep succeeding with the same token while it
// has more than min_ttl left, without asking the IdP; once it nears expiry
// the read fails with an error that names the config and says the IdP could
// not be reached, and shows no secret.
func TestIdPDownServesCachedToken(t *testing.T) {
	t.Parallel()
	const (
		ttl    = 12 * time.Second
		minTTL = 4 * time.Second
		secret = "down+client/secret:%41é"
	)
	v := StartDevVault(t)
	idp := fakeidp.New(fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "down-client", ClientSecret: secret, TokenTTL: ttl})
	hs := httptest.NewServer(idp)
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(hs.Close) }
	t.Cleanup(stop)

	v.Write("idp/config/down", "token_url="+hs.URL+idp.TokenPath(), "client_id=down-client", "client_secret="+secret)
	v.Write("idp/roles/down", "config=down", "min_ttl="+minTTL.String())
	first := v.ReadCreds("down")
	tok, expires := first.String("access_token"), first.String("expires_at")
	stop() // the IdP is gone: connections to it are refused

	served, deadline := 0, time.Now().Add(ttl+10*time.Second)
	var failure string
	for time.Now().Before(deadline) {
		var s Secret
		r := v.CLI(withFormatJSON([]string{"read", "idp/creds/down"})...)
		if r.Err != nil {
			failure = r.Stderr
			break
		}
		if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
			t.Fatalf("read %d: %v", served+1, err)
		}
		if s.String("access_token") != tok || s.String("expires_at") != expires {
			t.Fatalf("read %d with the IdP down returned another token (expires_at %s, first %s)", served+1, s.String("expires_at"), expires)
		}
		served++
		time.Sleep(500 * time.Millisecond)
	}
	if served == 0 {
		t.Fatal("no read succeeded after the IdP went down, though the cached token was valid")
	}
	if failure == "" {
		t.Fatalf("reads kept succeeding past the token's expiry (%s) with the IdP down", expires)
	}
	for _, want := range []string{`config "down"`, "could not be reached", "Code: 400"} { // not a 5xx, which Vault clients retry
		if !strings.Contains(failure, want) {
			t.Errorf("the read after the token neared expiry failed with %q, which lacks %q", failure, want)
		}
	}
	for _, form := range encodedForms(secret) {
		if strings.Contains(failure, form) {
			t.Errorf("the error shows the client secret (as %q)", form)
		}
	}
	if n := idp.TokenRequests(); n != 1 {
		t.Errorf("the IdP saw %d token requests, want 1 (before it went down)", n)
	}
	t.Logf("%d reads served the cached token with the IdP down before it neared expiry", served)
}
