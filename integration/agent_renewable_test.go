//go:build integration

package integration

import (
	"net/http"
	"testing"
	"time"
)

// TestAgentTemplateRenewableLease: with renewable_leases, Agent's template
// renews the lease instead of sleeping on it, and re-reads when the renewal
// can grant no more (10-20 % of the lease left). It still renders a fresh
// token before the one it rendered expires, one IdP request per rendered
// token. On a single-node raft Vault, where renewals are raft writes.
func TestAgentTemplateRenewableLease(t *testing.T) {
	if testing.Short() {
		t.Skip("raft Agent test skipped in -short mode")
	}
	t.Parallel()
	const ttl = 20 * time.Second
	v := startRaftCluster(t, 1)[0].Vault
	v.RegisterAndMount()
	idp := startAgentConfig(t, v, ttl)
	v.Write("idp/roles/agent", "config=agent", "renewable_leases=true", "min_ttl=10s")
	token := v.policyToken("agent", `path "idp/creds/agent" { capabilities = ["read"] }`)

	agent := startAgentTemplate(t, v, token, "idp/creds/agent", "exit_on_retry_failure = true")
	first := agent.firstRender(t)
	rendered1 := time.Now()
	for round := 1; round <= 2; round++ {
		next, oldStillValid, ok := agent.nextRender(idp, first)
		if !ok {
			t.Fatalf("round %d: Agent rendered no new token within 40 s (exited: %v, IdP token requests %d)", round, agent.proc.Exited(), idp.TokenRequests())
		}
		t.Logf("round %d: new token rendered %v after the previous one", round, time.Since(rendered1).Round(100*time.Millisecond))
		rendered1 = time.Now()
		if !oldStillValid {
			t.Errorf("round %d: the new token was rendered only after the old one had expired, want before", round)
		}
		if got := bearerStatus(t, idp.ResourceURL(), next); got != http.StatusOK {
			t.Errorf("round %d: the newly rendered token gets %d at the IdP", round, got)
		}
		first = next
	}
	if n := idp.TokenRequests(); n != 3 {
		t.Errorf("IdP saw %d token requests for three rendered tokens, want 3", n)
	}
}
