package vaultproc

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteAgentTemplateConfig writes, into dir, a Vault Agent config that
// logs in to vaultAddr with token (token_file auto-auth) and renders the
// access token of secretPath into a file, as an application consumes it,
// with the default template_config. It returns the config's path and the
// rendered file's.
func WriteAgentTemplateConfig(dir, vaultAddr, token, secretPath string) (conf, rendered string, err error) {
	tokenFile := filepath.Join(dir, "vault-token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		return "", "", err
	}
	rendered = filepath.Join(dir, "rendered", "access_token")
	conf = filepath.Join(dir, "agent.hcl")
	hcl := fmt.Sprintf(`
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
  exit_on_retry_failure = true
}
template {
  contents    = "{{ with secret \"%s\" }}{{ .Data.access_token }}{{ end }}"
  destination = %q
  perms       = "0600"
}
`, filepath.Join(dir, "agent.pid"), vaultAddr, tokenFile, secretPath, rendered)
	return conf, rendered, os.WriteFile(conf, []byte(hcl), 0o600)
}
