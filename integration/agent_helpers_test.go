//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// agentTemplate is a Vault Agent that authenticates with token and renders the
// access token of secretPath into a file, as an application consumes it.
type agentTemplate struct {
	proc     *proc
	rendered string
}

// startAgentTemplate starts it; templateConfig is the body of template_config.
func startAgentTemplate(t *testing.T, v *Vault, token, secretPath, templateConfig string) *agentTemplate {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "vault-token")
	writeFile(t, tokenFile, token)
	rendered := filepath.Join(dir, "rendered", "access_token")
	conf := filepath.Join(dir, "agent.hcl")
	writeFile(t, conf, fmt.Sprintf(`
pid_file = %q
vault {
  address = %q
}
auto_auth {
  method "token_file" {
    config = {
      token_file_path = %q
    }
  }
}
template_config {
%s
}
template {
  contents    = "{{ with secret \"%s\" }}{{ .Data.access_token }}{{ end }}"
  destination = %q
  perms       = "0600"
}
`, filepath.Join(dir, "agent.pid"), v.Addr, tokenFile, templateConfig, secretPath, rendered))
	p := startProc(t, "vault agent", filepath.Join(dir, "agent.log"), v.cliEnv(""), vaultBin, "agent", "-config="+conf)
	return &agentTemplate{proc: p, rendered: rendered}
}

// read is the rendered token, or "" before the first render.
func (a *agentTemplate) read() string {
	b, err := os.ReadFile(a.rendered)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// firstRender waits up to 30 s for Agent's first rendered token.
func (a *agentTemplate) firstRender(t *testing.T) string {
	t.Helper()
	var first string
	if !eventually(30*time.Second, 100*time.Millisecond, func() bool {
		first = a.read()
		return first != "" || a.proc.Exited()
	}) || first == "" {
		t.Fatalf("Agent rendered no token within 30 s (exited: %v)", a.proc.Exited())
	}
	return first
}

// nextRender waits up to 40 s for Agent to render a token other than prev.
// oldStillValid says whether the IdP still accepted prev when the new one
// appeared (the render came before the old token's end); ok is false when
// no new token came (or Agent exited).
func (a *agentTemplate) nextRender(idp *FakeIdP, prev string) (next string, oldStillValid, ok bool) {
	ok = eventually(40*time.Second, 100*time.Millisecond, func() bool {
		next = a.read()
		if next != "" && next != prev {
			oldStillValid = idp.Valid(prev)
			return true
		}
		return a.proc.Exited()
	}) && next != "" && next != prev
	return next, oldStillValid, ok
}
