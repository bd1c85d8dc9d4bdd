package vaultproc

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteProxyConfig writes, into dir, a Vault Proxy config that logs in to
// vaultAddr with AppRole (roleID, secretID), caches leased responses
// (cache {}, use_auto_auth_token) and listens on 127.0.0.1:port. It
// returns the config's path.
func WriteProxyConfig(dir, vaultAddr, roleID, secretID string, port int) (string, error) {
	files := map[string]string{"role-id": roleID, "secret-id": secretID}
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			return "", err
		}
	}
	conf := filepath.Join(dir, "proxy.hcl")
	hcl := fmt.Sprintf(`
pid_file = %q
vault {
  address = %q
}
auto_auth {
  method "approle" {
    config = {
      role_id_file_path                   = %q
      secret_id_file_path                 = %q
      remove_secret_id_file_after_reading = false
    }
  }
}
api_proxy {
  use_auto_auth_token = true
}
cache {}
listener "tcp" {
  address     = "127.0.0.1:%d"
  tls_disable = true
}
`, filepath.Join(dir, "proxy.pid"), vaultAddr, filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id"), port)
	return conf, os.WriteFile(conf, []byte(hcl), 0o600)
}
