//go:build integration

package integration

import (
	"strconv"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// TestAgentTemplateUnleasedToken runs Vault Agent with a template on the
// unleased idp/token/<role> (default template_config: Agent goes by the
// answer's ttl, rotation_period and last_vault_rotation) over more than
// three lives of a 20 s token. The rendered file never holds a dead token
// for longer than a render takes, each token is fetched once and read by
// Agent about once, and Vault holds no lease for the path.
func TestAgentTemplateUnleasedToken(t *testing.T) {
	t.Parallel()
	const ttl = 20 * time.Second
	v := StartDevVault(t)
	idp := startAgentConfig(t, v, ttl)
	v.Write("idp/roles/agent", "config=agent") // no min_ttl: the token's margin, 4 s of 20 s

	agent := startAgentTemplateOf(t, v, v.Token, "idp/token/agent", "exit_on_retry_failure = true", "access_token", "ttl")
	agent.firstRender(t)
	runFor := 3*ttl + 5*time.Second
	rendered := sampleAgentFile(t, agent, runFor, func(tok string) (time.Time, bool) {
		if idp.Valid(tok) {
			return time.Time{}, false
		}
		exp, _ := idp.ExpiresAt(tok)
		return exp, true
	})
	tokens, requests, reads := len(rendered), idp.TokenRequests(), v.engineReads("agent", "token")
	t.Logf("over %s: %d tokens rendered, %d IdP token requests, %d engine reads of idp/token by Agent", runFor, tokens, requests, reads)
	// A new token when 4 s of 20 are left, and Agent's read a second after
	// the answer's ttl: every 17 s.
	if tokens < 4 {
		t.Errorf("Agent rendered %d tokens in %s of %s tokens, want a new one each life (at least 4)", tokens, runFor, ttl)
	}
	if requests != tokens {
		t.Errorf("the IdP saw %d token requests for %d rendered tokens, want one per token", requests, tokens)
	}
	if most := int(runFor/(ttl-backend.Margin(ttl))) + 2; requests > most {
		t.Errorf("the IdP saw %d token requests in %s, want at most one per token life (%d)", requests, runFor, most)
	}
	// Agent re-reads ttl + 1 s after each answer, which is where the next
	// token is handed out: one read per token (and the start's).
	if reads > tokens+1 {
		t.Errorf("Agent read idp/token %d times for %d tokens: ttl sent it back before the next token was ready", reads, tokens)
	}
	if leases := v.leasesUnder("idp/"); len(leases) > 0 {
		t.Errorf("Vault lists leases under idp/ after Agent's unleased reads: %v", leases)
	}
}

// TestAgentTemplateUnleasedTokenSingleActive: the same on a MicroTek
// config (a new token kills the old one at once), with an app reading
// idp/creds leases meanwhile. No render and no lease may be killed while
// it is relied on: every lease ends, and every rendered ttl runs out, before
// its token dies; Agent's file holds a dead token only between the mint and
// its re-render.
func TestAgentTemplateUnleasedTokenSingleActive(t *testing.T) {
	t.Parallel()
	const ttl = 20 * time.Second
	v := StartDevVault(t)
	idp := StartFakeIdP(t, fakeidp.Options{
		Style: fakeidp.StyleMicroTek, ClientID: "00000000-0000-0000-0000-0000000000cc", ClientSecret: "mt-agent-secret", TokenTTL: ttl,
	})
	v.Write("idp/config/mt", "provider=microtek", "token_url="+idp.TokenURL(),
		"client_id=00000000-0000-0000-0000-0000000000cc", "client_secret=mt-agent-secret")
	// The next token may be minted 8 s before the current one's end: every
	// 12 s, each holder done a second before.
	v.Write("idp/roles/mt", "config=mt", "min_ttl=8s")

	agent := startAgentTemplateOf(t, v, v.Token, "idp/token/mt", "exit_on_retry_failure = true", "access_token", "ttl")
	// The app: reads creds every 700 ms and records each lease.
	app := startLeaseApp(t, v, "idp/creds/mt", 700*time.Millisecond)

	agent.firstRender(t)
	runFor := 3*ttl + 5*time.Second
	// A render's promise is the answer's time plus its ttl; the file is
	// seen up to agentRenderSlack after the answer, so seen + ttl less the
	// slack is a lower bound of it.
	var renders []heldToken
	rendered := sampleAgentFile(t, agent, runFor, idp.KilledAt, func(lines []string, seen time.Time) {
		if len(lines) < 2 {
			return
		}
		n, err := strconv.Atoi(lines[1])
		if err != nil || n < 1 {
			t.Errorf("Agent rendered ttl %q, want whole seconds, at least 1", lines[1])
			return
		}
		renders = append(renders, heldToken{token: lines[0], end: seen.Add(time.Duration(n)*time.Second - agentRenderSlack), what: "a render"})
	})
	leases := app.close()
	if agent.proc.Exited() {
		t.Fatal("Agent exited")
	}
	seen := map[string]bool{}
	for _, p := range append(leases, renders...) {
		seen[p.token] = true
		if killed, dead := idp.KilledAt(p.token); dead && killed.Before(p.end) {
			t.Errorf("%s relied on its token until at least %s, but the token died at %s", p.what, p.end.Format(time.StampMilli), killed.Format(time.StampMilli))
		}
	}
	for tok := range rendered {
		seen[tok] = true
	}
	requests, reads := idp.TokenRequests(), v.engineReads("mt", "token")
	t.Logf("over %s: %d tokens rendered (%d renders), %d app leases, %d tokens seen in all, %d IdP token requests, %d engine reads of idp/token by Agent",
		runFor, len(rendered), len(renders), len(leases), len(seen), requests, reads)
	// A mint every 12 s: at least five tokens in 65 s.
	if len(rendered) < 4 {
		t.Errorf("Agent rendered %d tokens in %s, want a new one each 12 s", len(rendered), runFor)
	}
	if requests != len(seen) {
		t.Errorf("the IdP saw %d token requests for %d tokens handed out, want one per token", requests, len(seen))
	}
	if most := int(runFor/(ttl-8*time.Second)) + 2; requests > most {
		t.Errorf("the IdP saw %d token requests in %s, want at most one per token life (%d)", requests, runFor, most)
	}
	if reads > len(rendered)+1 {
		t.Errorf("Agent read idp/token %d times for %d tokens, want about one read per token", reads, len(rendered))
	}
	if idp.MaxConcurrentTokenRequests() > 1 {
		t.Error("two token requests overlapped")
	}
	if leases := v.leasesUnder("idp/token/"); len(leases) > 0 {
		t.Errorf("Vault lists leases of idp/token after Agent's reads: %v", leases)
	}
	if leases := v.leasesUnder("idp/creds/"); len(leases) == 0 {
		t.Error("Vault lists no lease of the app's creds reads: the listing sees no lease at all")
	}
}
