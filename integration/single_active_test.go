//go:build integration

package integration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// TestSingleActiveLeasePromise runs a real Vault, a Vault Agent rendering a MicroTek
// token (one live token per client: a new one kills the old at once) for a role with
// min_ttl, and an app reading idp/creds directly, over three token lifetimes. No
// lease handed out may outlive its token, and Agent's file may hold a dead token only
// for the moment between the mint and its re-render.
func TestSingleActiveLeasePromise(t *testing.T) {
	t.Parallel()
	const ttl = 20 * time.Second
	v := StartDevVault(t)
	idp := StartFakeIdP(t, fakeidp.Options{
		Style: fakeidp.StyleMicroTek, ClientID: "00000000-0000-0000-0000-0000000000aa", ClientSecret: "mt+/:%secret", TokenTTL: ttl,
	})
	v.Write("idp/config/mt", "provider=microtek", "token_url="+idp.TokenURL(),
		"client_id=00000000-0000-0000-0000-0000000000aa", "client_secret=mt+/:%secret")
	// A 20 s token and min_ttl=8s: a min_ttl past half the token's life.
	v.Write("idp/roles/mt", "config=mt", "min_ttl=8s")

	// A reader asking more than the role's min_ttl would kill every holder's token.
	if r := v.CLI("read", "idp/creds/mt", "min_ttl=9s"); r.Err == nil || !strings.Contains(r.Stderr, "min_ttl") {
		t.Fatalf("a reader's min_ttl above the role's: err=%v stderr=%s, want a 400 naming min_ttl", r.Err, r.Stderr)
	}

	agent := startAgentTemplate(t, v, v.Token, "idp/creds/mt", "exit_on_retry_failure = true")
	// The app: reads creds every 700 ms and records each lease.
	app := startLeaseApp(t, v, "idp/creds/mt", 700*time.Millisecond)

	// Agent's file, sampled every 50 ms: a dead token there for longer than the
	// re-render takes means Agent was left holding it under a live lease.
	rendersSeen := sampleAgentFile(t, agent, 3*ttl, idp.KilledAt)
	leases := app.close()
	for _, l := range leases {
		if killed, dead := idp.KilledAt(l.token); dead && killed.Before(l.end) {
			t.Errorf("a lease ran until at least %s, but its token died at %s", l.end.Format(time.StampMilli), killed.Format(time.StampMilli))
		}
	}
	// Three lifetimes of 20 s with a mint every 12 s (20 s less min_ttl).
	if len(rendersSeen) < 3 || idp.TokenRequests() > 6 {
		t.Errorf("Agent rendered %d tokens, the IdP minted %d: want a new token each 12 s, and no more", len(rendersSeen), idp.TokenRequests())
	}
	if idp.MaxConcurrentTokenRequests() > 1 {
		t.Error("two token requests overlapped")
	}
	t.Logf("%d app leases checked, %d tokens rendered by Agent, %d IdP token requests", len(leases), len(rendersSeen), idp.TokenRequests())
}

func decodeSecret(t *testing.T, stdout string) Secret {
	t.Helper()
	var s Secret
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("decoding %q: %v", stdout, err)
	}
	return s
}

// TestSingleActiveWritesAndLostAnswers: through a real Vault, writes that would split
// a MicroTek client's token are refused, and a mint whose answer is lost never leaves
// the killed token to be served.
func TestSingleActiveWritesAndLostAnswers(t *testing.T) {
	t.Parallel()
	v := StartDevVault(t)
	idp := StartFakeIdP(t, fakeidp.Options{
		Style: fakeidp.StyleMicroTek, ClientID: "00000000-0000-0000-0000-0000000000bb", ClientSecret: "mt-secret",
		Scopes: []string{"public-api", "reports"}, TokenTTL: 4 * time.Second,
	})
	v.Write("idp/config/mt", "provider=microtek", "token_url="+idp.TokenURL(),
		"client_id=00000000-0000-0000-0000-0000000000bb", "client_secret=mt-secret")
	v.Write("idp/roles/a", "config=mt")
	v.Write("idp/roles/b", "config=mt", "scopes=public-api")
	refused := func(want string, args ...string) {
		t.Helper()
		if r := v.CLI(args...); r.Err == nil || !strings.Contains(r.Stderr, want) {
			t.Errorf("vault %s: err=%v stderr=%s, want a refusal naming %s", strings.Join(args, " "), r.Err, r.Stderr, want)
		}
	}
	refused("single_active_token", "write", "idp/config/mt", "scopes=public-api,reports")
	refused("single_active_token", "write", "idp/roles/b", "scopes=public-api reports")
	refused("client_id", "write", "idp/config/mt2", "provider=microtek", "token_url="+idp.TokenURL(),
		"client_id=00000000-0000-0000-0000-0000000000bb", "client_secret=mt-secret")

	old := v.ReadCreds("a").String("access_token")
	if got := v.ReadCreds("b").String("access_token"); got != old {
		t.Fatal("roles a and b of one MicroTek config do not share the token")
	}
	time.Sleep(3500 * time.Millisecond) // past the token's last holding period
	idp.LoseNextAnswers(3, fakeidp.LossGateway)
	if r := v.CLI("read", "idp/creds/a"); r.Err == nil {
		t.Fatal("the read whose mint answers were all lost succeeded")
	}
	if idp.Valid(old) {
		t.Fatal("the lost mints did not kill the old token at the IdP")
	}
	s := v.ReadCreds("a")
	if tok := s.String("access_token"); tok == old || !idp.Valid(tok) {
		t.Fatalf("after the lost answers the read got the old token=%v, valid=%v", tok == old, idp.Valid(tok))
	}
}

// TestSingleActiveLoginsAndExchanges: through a real Vault, on configs that
// keep one live token per client (the fake kills the client's earlier
// tokens on every issue, of every grant), a second login while the first
// login's token is held under a lease is refused before its code is sent,
// and the held token lives on; an exchange of that token on another
// single-active client is served under its lease without a second
// exchange; an exchange role whose callers bring their subject tokens is
// refused on such a config.
func TestSingleActiveLoginsAndExchanges(t *testing.T) {
	t.Parallel()
	const ttl = 30 * time.Second
	v := StartDevVault(t)
	idp := StartFakeIdP(t, fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "sa-app", ClientSecret: "sa-secret", Scopes: []string{"read"},
		SingleActive: true, RefreshTokens: true, RedirectURIs: []string{v.callbackURL()}, TokenTTL: ttl})
	v.Write("idp/config/sa", "token_url="+idp.TokenURL(), "auth_url="+idp.URL+"/connect/authorize", "client_id=sa-app", "client_secret=sa-secret",
		"redirect_uris="+v.callbackURL(), "single_active_token=true")
	v.Write("idp/roles/app", "config=sa", "grant_type=authorization_code", "scopes=read")

	loginURL, state := v.authURL("app")
	v.Write("idp/callback", "code="+loginCode(t, loginURL), "state="+state)
	lease := v.ReadCreds("app")
	held := lease.String("access_token")
	leaseEnd := time.Now().Add(time.Duration(lease.LeaseDuration) * time.Second)

	loginURL, state = v.authURL("app")
	r := v.CLI("write", "idp/callback", "code="+loginCode(t, loginURL), "state="+state)
	if r.Err == nil || !strings.Contains(r.Stderr, "single_active_token") || !strings.Contains(r.Stderr, "held under leases until") {
		t.Fatalf("a second login under the live lease: err=%v %s, want a refusal naming the hold", r.Err, r.Stderr)
	}
	if n := idp.TokenRequestsByGrant("authorization_code"); n != 1 {
		t.Fatalf("%d code exchanges: the refused login's code was sent", n)
	}
	if !idp.Valid(held) || v.ReadCreds("app").String("access_token") != held {
		t.Fatal("the refused login killed or replaced the held token")
	}

	// An exchange of the held token on another single-active client.
	sts := StartFakeIdP(t, fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "sa-sts", ClientSecret: "sts-secret", Scopes: []string{"orders"},
		SingleActive: true, TokenExchange: true, TokenTTL: ttl})
	sts.AllowSubject(held, leaseEnd.Add(time.Minute))
	v.Write("idp/config/sx", "token_url="+sts.TokenURL(), "client_id=sa-sts", "client_secret=sts-secret", "single_active_token=true")
	v.Write("idp/roles/down", "config=sx", "grant_type=token_exchange", "subject_role=app", "scopes=orders")
	first := v.ReadCreds("down")
	exchanged := first.String("access_token")
	if sts.SubjectOf(exchanged) != held {
		t.Fatal("the exchange is not of the held login token")
	}
	if again := v.ReadCreds("down"); again.String("access_token") != exchanged || sts.TokenRequests() != 1 {
		t.Fatalf("a second read under the exchange's lease: %d exchanges, want the held one", sts.TokenRequests())
	}
	if r := v.CLI("write", "idp/roles/caller", "config=sx", "grant_type=token_exchange"); r.Err == nil || !strings.Contains(r.Stderr, "single_active_token") {
		t.Fatalf("a caller-subject exchange role on a single-active config: err=%v %s, want a refusal", r.Err, r.Stderr)
	}
	for _, tok := range []string{held, exchanged} {
		if killed, dead := idp.KilledAt(tok); dead && killed.Before(leaseEnd) {
			t.Fatalf("a token died at %s under a lease running until %s", killed, leaseEnd)
		}
	}
	if idp.MaxConcurrentTokenRequests() > 1 || sts.MaxConcurrentTokenRequests() > 1 {
		t.Error("two token requests of one single-active client overlapped")
	}
}
