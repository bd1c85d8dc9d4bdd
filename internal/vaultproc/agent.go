package vaultproc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteAgentTemplateConfig writes, into dir, a Vault Agent config that
// logs in to vaultAddr with token (token_file auto-auth) and renders fields
// of secretPath's data into a file, one a line, as an application consumes
// them; templateConfig is the body of template_config. It returns the
// config's path and the rendered file's.
func WriteAgentTemplateConfig(dir, vaultAddr, token, secretPath, templateConfig string, fields ...string) (conf, rendered string, err error) {
	tokenFile := filepath.Join(dir, "vault-token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		return "", "", err
	}
	var contents strings.Builder
	for i, f := range fields {
		if i > 0 {
			contents.WriteString(`\n`)
		}
		fmt.Fprintf(&contents, "{{ .Data.%s }}", f)
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
%s
}
template {
  contents    = "{{ with secret \"%s\" }}%s{{ end }}"
  destination = %q
  perms       = "0600"
}
`, filepath.Join(dir, "agent.pid"), vaultAddr, tokenFile, templateConfig, secretPath, contents.String(), rendered)
	return conf, rendered, os.WriteFile(conf, []byte(hcl), 0o600)
}
