package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/vaultproc"
)

// startProxy runs `vault proxy` against t with AppRole auto-auth, the lease
// cache and use_auto_auth_token (apps send no Vault token), as
// integration/proxy_test.go does. It returns Proxy's address and the process.
func (e *env) startProxy(ctx context.Context, t *vaultTarget) (string, *vaultproc.Proc, error) {
	c := t.srv.Client
	if err := c.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		return "", nil, err
	}
	if err := c.Sys().PutPolicy("bench-proxy", `path "idp/creds/*" { capabilities = ["read"] }`); err != nil {
		return "", nil, err
	}
	if _, err := c.Logical().Write("auth/approle/role/proxy", map[string]any{"token_policies": "bench-proxy", "token_ttl": "1h"}); err != nil {
		return "", nil, err
	}
	rid, err := c.Logical().Read("auth/approle/role/proxy/role-id")
	if err != nil {
		return "", nil, err
	}
	sid, err := c.Logical().Write("auth/approle/role/proxy/secret-id", nil)
	if err != nil {
		return "", nil, err
	}
	dir := filepath.Join(e.tmp, "proxy")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	port, err := vaultproc.FreePort()
	if err != nil {
		return "", nil, err
	}
	conf, err := vaultproc.WriteProxyConfig(dir, t.srv.Addr, fmt.Sprint(rid.Data["role_id"]), fmt.Sprint(sid.Data["secret_id"]), port)
	if err != nil {
		return "", nil, err
	}
	p, err := vaultproc.StartProc(e.vault, []string{"proxy", "-config=" + conf}, vaultproc.Env(dir, t.srv.Addr), filepath.Join(dir, "proxy.log"))
	if err != nil {
		return "", nil, err
	}
	addr := fmt.Sprintf("http://127.0.0.1:%d", port)
	// Proxy answers once auto-auth has a token; a creds read then works.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			return addr, p, nil
		}
		if p.Exited() || time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop()
			return "", nil, fmt.Errorf("vault proxy did not start: %v\n%s", err, vaultproc.Tail(filepath.Join(dir, "proxy.log"), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
