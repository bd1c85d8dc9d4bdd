//go:build integration

package integration

import (
	"net/http"
	"testing"
	"time"
)

// TestAgentTemplate runs Vault Agent with a template rendering the access token to a
// file, as an application would consume it, and checks the Agent renders a fresh token
// before the one it rendered expires.
func TestAgentTemplate(t *testing.T) {
	t.Parallel()
	const ttl = 20 * time.Second
	v := StartDevVault(t)
	idp := startAgentConfig(t, v, ttl)
	// min_ttl: a read with less than 10 s left on the cached token gets a new one.
	v.Write("idp/roles/agent", "config=agent", "grant_type=client_credentials", "min_ttl=10s")

	token := v.policyToken("agent", `path "idp/creds/agent" { capabilities = ["read"] }`)

	// Agent refreshes a non-renewable lease after lease_renewal_threshold (+-5 %) of
	// its duration: here after 13-15 s of a ~20 s token, when it has less than the
	// role's min_ttl left, so the read brings a new token before the old one expires.
	agent := startAgentTemplate(t, v, token, "idp/creds/agent",
		"exit_on_retry_failure = true\nlease_renewal_threshold = 0.7")
	first := agent.firstRender(t)
	firstSeen := time.Now()
	if got := bearerStatus(t, idp.ResourceURL(), first); got != http.StatusOK {
		t.Fatalf("the rendered token gets %d at the IdP, want 200", got)
	}

	second, oldStillValid, ok := agent.nextRender(idp, first)
	if !ok {
		t.Fatalf("Agent rendered no new token within 40 s (exited: %v, IdP token requests %d)", agent.proc.Exited(), idp.TokenRequests())
	}
	t.Logf("new token rendered %v after the first; IdP token requests: %d", time.Since(firstSeen).Round(100*time.Millisecond), idp.TokenRequests())
	if !oldStillValid {
		t.Error("the new token was rendered only after the old one had expired, want before")
	}
	if got := bearerStatus(t, idp.ResourceURL(), second); got != http.StatusOK {
		t.Errorf("the newly rendered token gets %d at the IdP, want 200", got)
	}
	if n := idp.TokenRequests(); n != 2 {
		t.Errorf("IdP saw %d token requests for two rendered tokens, want 2", n)
	}
}
